// Token strip front-end. Python renders the HTML (the `html` trait, the same markup as the static view);
// this module adds the interaction: hovering a token shows its details, clicking it sets `selected`
// on the Python widget (clicking the selected token again clears it), and the selection is highlighted.

function render({ model, el }) {
  el.classList.add("wb-live");

  function detailNode() {
    return el.querySelector(".wb-detail");
  }

  function showDetail(text) {
    const node = detailNode();
    if (node) node.textContent = text ?? node.dataset.default ?? "";
  }

  function paint() {
    const selected = model.get("selected");
    let chosen = null;
    for (const node of el.querySelectorAll(".wb-token")) {
      const on = Number(node.dataset.index) === selected;
      node.classList.toggle("wb-selected", on);
      if (on) chosen = node;
    }
    showDetail(chosen ? chosen.title : null);
  }

  function draw() {
    el.innerHTML = model.get("html");
    paint();
  }

  function onClick(event) {
    const node = event.target.closest(".wb-token");
    if (!node || !el.contains(node)) return;
    const index = Number(node.dataset.index);
    model.set("selected", model.get("selected") === index ? -1 : index);
    model.save_changes();
  }

  function onOver(event) {
    const node = event.target.closest(".wb-token");
    if (node && el.contains(node)) showDetail(node.title);
  }

  el.addEventListener("click", onClick);
  el.addEventListener("mouseover", onOver);
  el.addEventListener("mouseleave", paint);
  model.on("change:html", draw);
  model.on("change:selected", paint);
  draw();

  return () => {
    model.off("change:html", draw);
    model.off("change:selected", paint);
  };
}

export default { render };
