// Heatmap front-end. Python renders the table (the `html` trait); this module adds the linked selection:
// clicking a row (its label or any cell) sets `selected_row`; Python answers with `highlighted_cols` (the
// row's largest columns), which are highlighted here. Clicking a column label sets `selected_col`.

function render({ model, el }) {
  el.classList.add("wb-live");

  function showDetail(text) {
    const node = el.querySelector(".wb-detail");
    if (node) node.textContent = text ?? node.dataset.default ?? "";
  }

  function paint() {
    const row = model.get("selected_row");
    const col = model.get("selected_col");
    const highlighted = new Set(model.get("highlighted_cols"));
    for (const tr of el.querySelectorAll("tbody tr")) {
      tr.classList.toggle("wb-selected", Number(tr.dataset.row) === row);
    }
    for (const th of el.querySelectorAll(".wb-hm-col")) {
      const j = Number(th.dataset.col);
      th.classList.toggle("wb-highlight", highlighted.has(j));
      th.classList.toggle("wb-selected", j === col);
    }
    for (const td of el.querySelectorAll(".wb-hm-cell")) {
      const on = Number(td.dataset.row) === row && highlighted.has(Number(td.dataset.col));
      td.classList.toggle("wb-highlight", on);
    }
    const first = el.querySelector(`.wb-hm-cell.wb-highlight`);
    showDetail(first ? first.title : null);
  }

  function draw() {
    el.innerHTML = model.get("html");
    paint();
  }

  function toggle(name, index) {
    model.set(name, model.get(name) === index ? -1 : index);
    model.save_changes();
  }

  function onClick(event) {
    const col = event.target.closest(".wb-hm-col");
    if (col && el.contains(col)) return toggle("selected_col", Number(col.dataset.col));
    const row = event.target.closest("[data-row]");
    if (row && el.contains(row)) toggle("selected_row", Number(row.dataset.row));
  }

  function onOver(event) {
    const cell = event.target.closest(".wb-hm-cell");
    if (cell && el.contains(cell)) showDetail(cell.title);
  }

  el.addEventListener("click", onClick);
  el.addEventListener("mouseover", onOver);
  el.addEventListener("mouseleave", paint);
  model.on("change:html", draw);
  model.on("change:selected_row", paint);
  model.on("change:selected_col", paint);
  model.on("change:highlighted_cols", paint);
  draw();

  return () => {
    model.off("change:html", draw);
    model.off("change:selected_row", paint);
    model.off("change:selected_col", paint);
    model.off("change:highlighted_cols", paint);
  };
}

export default { render };
