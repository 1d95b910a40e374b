// Explorer front-end: the tab strip, the text box, the active tab's controls, a progress bar and an error
// box. Everything it draws comes from the Python widget's traits; user actions go back as:
//   - clicking a tab sets `active` (Python swaps the controls and shows or runs that tab);
//   - changing a control, pressing Run or Ctrl+Enter in the text sends {type: "run", text, values}.
// The result views themselves are separate live widgets that Python places below this bar.

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el }) {
  el.classList.add("wb-view", "wb-explorer", "wb-live");
  const tabs = make("div", "wb-tabs");
  const note = make("div", "wb-note");
  const form = make("div", "wb-form");
  const textarea = make("textarea", "wb-textarea");
  const controls = make("div", "wb-controls");
  const run = make("button", "wb-run", "Run");
  const status = make("div", "wb-status");
  const bar = make("progress", "wb-progress");
  const message = make("span", "wb-message");
  const error = make("div", "wb-error");
  textarea.rows = 3;
  textarea.placeholder = "text to explore (Ctrl+Enter runs)";
  bar.max = 1;
  status.append(bar, message);
  form.append(textarea, controls);
  controls.append(run);
  el.append(tabs, note, form, status, error);

  let values = {};

  function send() {
    model.send({ type: "run", text: textarea.value, values: { ...values } });
  }

  function drawTabs() {
    const active = model.get("active");
    const buttons = model.get("tabs").map((tab) => {
      const button = make("button", "wb-tab", tab.title);
      button.dataset.tab = tab.name;
      button.classList.toggle("wb-active", tab.name === active);
      button.classList.toggle("wb-unavailable", !tab.available);
      if (tab.note) button.title = tab.note;
      button.addEventListener("click", () => {
        model.set("active", tab.name);
        model.save_changes();
      });
      return button;
    });
    tabs.replaceChildren(...buttons);
    const spec = model.get("tabs").find((tab) => tab.name === active);
    const available = spec ? spec.available : false;
    form.style.display = available ? "" : "none";
    note.textContent = model.get("note");
    note.style.display = model.get("note") ? "" : "none";
  }

  function same(a, b) {
    return JSON.stringify(a) === JSON.stringify(b);
  }

  function controlNode(spec) {
    const wrap = make("label", "wb-control");
    wrap.append(make("span", "wb-control-label", spec.label));
    let input;
    const commit = (value) => {
      values[spec.name] = value;
      send();
    };
    if (spec.kind === "dropdown") {
      input = make("select");
      spec.options.forEach((option, i) => {
        const node = make("option", "", option.label);
        node.value = String(i);
        node.selected = same(option.value, values[spec.name]);
        input.append(node);
      });
      input.addEventListener("change", () => commit(spec.options[input.selectedIndex].value));
    } else if (spec.kind === "checkbox") {
      input = make("input");
      input.type = "checkbox";
      input.checked = Boolean(values[spec.name]);
      input.addEventListener("change", () => commit(input.checked));
    } else if (spec.kind === "text") {
      input = make("input");
      input.type = "text";
      input.value = values[spec.name] ?? "";
      input.addEventListener("change", () => commit(input.value));
    } else {
      input = make("input");
      input.type = spec.kind === "slider" ? "range" : "number";
      for (const key of ["min", "max", "step"]) if (spec[key] !== null) input[key] = spec[key];
      input.value = values[spec.name];
      if (spec.kind === "slider") {
        const readout = make("span", "wb-readout", String(values[spec.name]));
        input.addEventListener("input", () => (readout.textContent = input.value));
        wrap.append(input, readout);
      }
      input.addEventListener("change", () => commit(Number(input.value)));
    }
    input.dataset.control = spec.name;
    if (!wrap.contains(input)) wrap.append(input);
    return wrap;
  }

  function drawControls() {
    values = { ...model.get("values") };
    controls.replaceChildren(...model.get("controls").map(controlNode), run);
  }

  function drawText() {
    if (document.activeElement !== textarea) textarea.value = model.get("text");
  }

  function drawStatus() {
    const state = model.get("status");
    const progress = model.get("progress");
    bar.style.display = state === "running" ? "" : "none";
    if (progress < 0) bar.removeAttribute("value");
    else bar.value = progress;
    message.textContent = model.get("message");
    run.disabled = state === "running";
    el.dataset.status = state;
  }

  function drawError() {
    const text = model.get("error");
    error.textContent = text;
    error.style.display = text ? "" : "none";
  }

  run.addEventListener("click", (event) => {
    event.preventDefault();
    send();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  });

  const handlers = {
    "change:tabs change:active change:note": drawTabs,
    "change:controls change:values": drawControls,
    "change:text": drawText,
    "change:status change:progress change:message": drawStatus,
    "change:error": drawError,
  };
  const each = (fn) => {
    for (const [events, handler] of Object.entries(handlers)) for (const e of events.split(" ")) fn(e, handler);
  };
  each((e, handler) => model.on(e, handler));
  drawTabs();
  drawControls();
  drawText();
  drawStatus();
  drawError();

  return () => {
    each((e, handler) => model.off(e, handler));
  };
}

export default { render };
