// frcunet report pages: sort and filter the case tables, open a thumbnail's full-size overlay in place.
// The project's own script (MIT, like the package); it loads nothing and talks to no server.
"use strict";
(function () {
  function cellValue(cell, type) {
    if (type === "text") return cell.textContent;
    var v = parseFloat(cell.getAttribute("data-v"));
    return isNaN(v) ? null : v;
  }

  // Undefined values (an HD95 with an empty mask) go last in either direction; ties keep their order.
  function compare(a, b, type, direction) {
    if (a === null || b === null) return a === null ? (b === null ? 0 : 1) : -1;
    if (type === "text") return direction * a.localeCompare(b);
    return direction * (a - b);
  }

  function setUp(block) {
    var table = block.querySelector("table.cases");
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var body = table.tBodies[0];
    var count = block.querySelector(".count");
    var what = table.getAttribute("data-what") || "rows";
    // Each row's sortable values, read once: 520 rows sort in a few milliseconds.
    var rows = Array.prototype.map.call(body.rows, function (row) {
      return {row: row, values: headers.map(function (th, i) {
        var type = th.getAttribute("data-type");
        return type ? cellValue(row.cells[i], type) : null;
      })};
    });

    function sortBy(index, descending) {
      var type = headers[index].getAttribute("data-type");
      var direction = descending ? -1 : 1;
      rows.sort(function (a, b) { return compare(a.values[index], b.values[index], type, direction); });
      var fragment = document.createDocumentFragment();
      rows.forEach(function (entry) { fragment.appendChild(entry.row); });
      body.appendChild(fragment);
      headers.forEach(function (th, i) {
        if (i === index) th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        else th.removeAttribute("aria-sort");
      });
    }

    headers.forEach(function (th, index) {
      var button = th.querySelector("button");
      if (!button) return;
      button.addEventListener("click", function () {
        // A first click sorts ascending (worst Dice first); a click on the sorted column turns it round.
        sortBy(index, th.getAttribute("aria-sort") === "ascending");
      });
    });

    var column = block.querySelector(".filter-column");
    var field = block.querySelector(".filter-value");
    function applyFilter() {
      var limit = field ? parseFloat(field.value) : NaN;
      var index = column ? headers.findIndex(function (th) {
        return th.getAttribute("data-key") === column.value;
      }) : -1;
      var shown = 0;
      rows.forEach(function (entry) {
        var v = index < 0 ? null : entry.values[index];
        var hide = !isNaN(limit) && !(v !== null && v < limit);
        if (entry.row.hidden !== hide) entry.row.hidden = hide;  // untouched rows cost no style work
        if (!hide) shown += 1;
      });
      count.textContent = (shown === rows.length ? "" : shown + " of ") + rows.length + " " + what +
        (shown === rows.length ? "" : " shown");
    }
    if (field) {
      field.addEventListener("input", applyFilter);
      column.addEventListener("change", applyFilter);
      block.querySelector(".filter-clear").addEventListener("click", function () {
        field.value = "";
        applyFilter();
      });
      applyFilter();
    }
  }

  function setUpViewer() {
    var viewer = document.getElementById("viewer");
    if (!viewer || typeof viewer.showModal !== "function") return;  // the links still open the images
    var image = viewer.querySelector("img");
    var caption = viewer.querySelector("figcaption");
    document.addEventListener("click", function (event) {
      var link = event.target.closest ? event.target.closest("a.full") : null;
      if (!link) return;
      event.preventDefault();
      image.src = link.getAttribute("href");
      image.alt = caption.textContent = link.getAttribute("data-caption") || "";
      viewer.showModal();
    });
    viewer.addEventListener("click", function () { viewer.close(); });
  }

  Array.prototype.forEach.call(document.querySelectorAll(".case-table"), setUp);
  setUpViewer();
})();
