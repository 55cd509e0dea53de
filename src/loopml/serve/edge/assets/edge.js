// loopml edge page: verify the bundle, load model.onnx with onnxruntime-web, build a
// form from the signature in edge.json and predict in the browser. Nothing is sent to
// a server. window.loopmlEdge exposes the same predict function for scripts and tests.
"use strict";

(function () {
  const state = { manifest: null, session: null, inputs: [] };
  const $ = (id) => document.getElementById(id);

  function setStatus(text, kind) {
    const el = $("status");
    el.textContent = text;
    el.dataset.state = kind;
  }

  async function sha256Hex(buffer) {
    const digest = await crypto.subtle.digest("SHA-256", buffer);
    return Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function fetchVerified(path, manifest) {
    const entry = manifest.files[path];
    if (!entry) throw new Error(path + " is not listed in edge.json");
    const response = await fetch(path, { cache: "no-cache" });
    if (!response.ok) throw new Error("cannot fetch " + path + ": HTTP " + response.status);
    const buffer = await response.arrayBuffer();
    const actual = await sha256Hex(buffer);
    if (actual !== entry.sha256) {
      throw new Error(path + " has sha256 " + actual.slice(0, 12) + "... but edge.json records " +
        entry.sha256.slice(0, 12) + "...: the file was modified; refusing to run it");
    }
    return buffer;
  }

  function fieldFor(spec) {
    const label = document.createElement("label");
    const title = document.createElement("span");
    title.textContent = spec.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = spec.kind + (spec.nullable ? ", may be empty" : "");
    let control;
    if (spec.kind === "category" && spec.categories && spec.categories.length) {
      control = document.createElement("select");
      const empty = document.createElement("option");
      empty.value = "";
      empty.textContent = "(missing)";
      control.appendChild(empty);
      for (const c of spec.categories) {
        const opt = document.createElement("option");
        opt.value = String(c);
        opt.textContent = String(c);
        control.appendChild(opt);
      }
    } else {
      control = document.createElement("input");
      if (spec.kind === "category") {
        control.type = "text";
      } else {
        control.type = "number";
        control.step = "any";
      }
    }
    control.id = "f-" + spec.name;
    control.name = spec.name;
    control.dataset.feature = spec.name;
    control.dataset.kind = spec.kind;
    label.append(title, kind, control);
    return label;
  }

  function readForm() {
    const row = {};
    for (const spec of state.manifest.signature.inputs) {
      const raw = $("f-" + spec.name).value.trim();
      if (spec.kind === "category") {
        row[spec.name] = raw === "" ? null : raw;
      } else if (raw === "") {
        row[spec.name] = null;
      } else {
        const value = Number(raw);
        if (!Number.isFinite(value)) throw new Error(spec.name + ": " + JSON.stringify(raw) + " is not a number");
        row[spec.name] = value;
      }
    }
    return row;
  }

  function feeds(rows) {
    const out = {};
    const n = rows.length;
    for (const spec of state.manifest.signature.inputs) {
      if (!state.inputs.includes(spec.name)) continue;
      if (spec.kind === "category") {
        const values = rows.map((r) => (r[spec.name] === null || r[spec.name] === undefined ? "" : String(r[spec.name])));
        out[spec.name] = new ort.Tensor("string", values, [n, 1]);
      } else {
        const values = new Float32Array(n);
        rows.forEach((r, i) => {
          const v = r[spec.name];
          if ((v === null || v === undefined) && !spec.nullable) throw new Error(spec.name + " may not be empty");
          values[i] = v === null || v === undefined ? NaN : Number(v);
        });
        out[spec.name] = new ort.Tensor("float32", values, [n, 1]);
      }
    }
    return out;
  }

  // Returns what loopml's Predictor returns: P(positive) for binary, class
  // probabilities for multiclass, the value for regression.
  async function predict(rows) {
    if (!state.session) throw new Error("the model is not loaded yet");
    const sig = state.manifest.signature;
    const outputName = sig.task === "regression" ? "variable" : "probabilities";
    const result = await state.session.run(feeds(rows), [outputName]);
    const tensor = result[outputName];
    const width = tensor.dims.length > 1 ? tensor.dims[1] : 1;
    const data = Array.from(tensor.data, Number);
    return rows.map((_, i) => {
      const row = data.slice(i * width, (i + 1) * width);
      if (sig.task === "regression") return row[0];
      if (sig.task === "binary") return row[row.length - 1];
      return row;
    });
  }

  function show(value) {
    const sig = state.manifest.signature;
    const el = $("result");
    el.replaceChildren();
    if (Array.isArray(value)) {
      const table = document.createElement("table");
      table.className = "probs";
      value.forEach((p, i) => {
        const tr = table.insertRow();
        tr.insertCell().textContent = String((sig.classes || [])[i] ?? i);
        tr.insertCell().textContent = p.toFixed(4);
      });
      el.appendChild(table);
      el.dataset.value = JSON.stringify(value);
    } else {
      el.textContent = sig.task === "regression" ? value.toPrecision(6) : (100 * value).toFixed(2) + " %";
      el.dataset.value = String(value);
    }
    $("output").hidden = false;
  }

  async function onSubmit(event) {
    event.preventDefault();
    try {
      const start = performance.now();
      const [value] = await predict([readForm()]);
      const ms = performance.now() - start;
      show(value);
      $("timing").textContent = state.manifest.signature.output + " - computed in this browser in " + ms.toFixed(2) + " ms";
      setStatus("Ready.", "ready");
    } catch (err) {
      setStatus(String(err.message || err), "error");
    }
  }

  async function main() {
    try {
      const response = await fetch("edge.json", { cache: "no-cache" });
      if (!response.ok) throw new Error("cannot fetch edge.json: HTTP " + response.status);
      const manifest = await response.json();
      state.manifest = manifest;
      const model = manifest.model;
      $("title").textContent = model.name + " v" + model.version;
      $("subtitle").textContent = manifest.signature.output + " (" + manifest.compression + ", target " + manifest.target + ")";
      document.title = model.name + " v" + model.version + " - loopml edge";
      const bytes = await fetchVerified("model.onnx", manifest);
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.wasmPaths = new URL("vendor/", window.location.href).href;
      state.session = await ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
      state.inputs = state.session.inputNames;
      const fields = $("fields");
      for (const spec of manifest.signature.inputs) fields.appendChild(fieldFor(spec));
      $("form").hidden = false;
      $("form").addEventListener("submit", onSubmit);
      $("footer").textContent = "bundle " + manifest.bundle_sha256.slice(0, 12) + " - onnxruntime-web " +
        (manifest.web ? manifest.web.onnxruntime_web : "?") + " - nothing leaves this page";
      setStatus("Ready.", "ready");
      document.body.dataset.ready = "true";
    } catch (err) {
      setStatus(String(err.message || err), "error");
      document.body.dataset.ready = "error";
    }
  }

  window.loopmlEdge = { predict, state };
  main();
})();
