// Tree view front-end. Python renders the SVG (the `html` trait); this module adds the interaction:
// clicking a node sets `selected` (Python answers with `selected_path`), the highlighted path and the
// selection are drawn with CSS classes, and hovering a node shows its details.

function render({ model, el }) {
  el.classList.add("wb-live");

  function showDetail(text) {
    const node = el.querySelector(".wb-detail");
    if (node) node.textContent = text ?? node.dataset.default ?? "";
  }

  function detailOf(g) {
    const t = g.querySelector("title");
    return t ? t.textContent : "";
  }

  function paint() {
    const selected = model.get("selected");
    const path = model.get("highlight");
    const onPath = new Set(path);
    const pathEdges = new Set(path.slice(1));
    let chosen = null;
    for (const g of el.querySelectorAll(".wb-tree-node")) {
      const i = Number(g.dataset.index);
      g.classList.toggle("wb-path", onPath.has(i));
      g.classList.toggle("wb-selected", i === selected);
      if (i === selected) chosen = g;
    }
    for (const edge of el.querySelectorAll(".wb-tree-edge")) {
      edge.classList.toggle("wb-path", pathEdges.has(Number(edge.dataset.child)));
    }
    showDetail(chosen ? detailOf(chosen) : null);
  }

  function draw() {
    el.innerHTML = model.get("html");
    paint();
  }

  function onClick(event) {
    const g = event.target.closest(".wb-tree-node");
    if (!g || !el.contains(g)) return;
    const i = Number(g.dataset.index);
    model.set("selected", model.get("selected") === i ? -1 : i);
    model.save_changes();
  }

  function onOver(event) {
    const g = event.target.closest(".wb-tree-node");
    if (g && el.contains(g)) showDetail(detailOf(g));
  }

  el.addEventListener("click", onClick);
  el.addEventListener("mouseover", onOver);
  el.addEventListener("mouseleave", paint);
  model.on("change:html", draw);
  model.on("change:selected", paint);
  model.on("change:highlight", paint);
  draw();

  return () => {
    model.off("change:html", draw);
    model.off("change:selected", paint);
    model.off("change:highlight", paint);
  };
}

export default { render };
