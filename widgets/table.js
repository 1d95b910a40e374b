// Results-table front-end. Python renders the rows in sorted order (the `html` trait); this module adds
// the interaction: clicking a column header sets `sort_by` (clicking it again flips `ascending`), clicking
// a row sets `selected` (an index into the rows as given, whatever the display order).

function render({ model, el }) {
  el.classList.add("wb-live");

  function paint() {
    const selected = model.get("selected");
    for (const tr of el.querySelectorAll("tbody tr")) {
      tr.classList.toggle("wb-selected", Number(tr.dataset.index) === selected);
    }
  }

  function draw() {
    el.innerHTML = model.get("html");
    paint();
  }

  function onClick(event) {
    const th = event.target.closest("th[data-column]");
    if (th && el.contains(th)) {
      const column = th.dataset.column;
      if (model.get("sort_by") === column) {
        model.set("ascending", !model.get("ascending"));
      } else {
        model.set("sort_by", column);
        model.set("ascending", true);
      }
      model.save_changes();
      return;
    }
    const tr = event.target.closest("tbody tr");
    if (tr && el.contains(tr)) {
      const i = Number(tr.dataset.index);
      model.set("selected", model.get("selected") === i ? -1 : i);
      model.save_changes();
    }
  }

  el.addEventListener("click", onClick);
  model.on("change:html", draw);
  model.on("change:selected", paint);
  draw();

  return () => {
    model.off("change:html", draw);
    model.off("change:selected", paint);
  };
}

export default { render };
