// The llmship web chat: streams OpenAI-style chat completions from this service (or, with RAG on, from the RAG
// service named by /chat/config) and shows the RAG answer's sources as clickable [n] markers.
// Every piece of text from the user or a model goes into the page as text (textContent / text nodes), never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    model: $("model"), rag: $("rag"), ragLabel: $("rag-label"), key: $("api-key"), reset: $("new-chat"),
    status: $("status"), log: $("log"), form: $("ask"), prompt: $("prompt"), send: $("send"), stop: $("stop"),
  };
  const KEY_STORAGE = "llmship.apiKey";
  const RAG_MODEL = "rag";
  const MARKERS = /\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]/g; // [2], [1, 3] (as llmship.rag.citations reads them)
  let config = { rag_url: null };
  let history = []; // completed turns: {role, content}
  let controller = null; // the AbortController of the running request
  let chatModel = ""; // the model to go back to when RAG is switched off
  let picked = false; // the user chose a model: a new list keeps it

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(text, isError = false) {
    els.status.textContent = text;
    els.status.classList.toggle("error", isError);
  }

  function headers(json) {
    const out = json ? { "Content-Type": "application/json" } : {};
    const key = els.key.value.trim();
    if (key) out.Authorization = `Bearer ${key}`;
    return out;
  }

  // "401: Invalid API key" from an OpenAI error body, else the HTTP status.
  async function errorText(response) {
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return `${response.status}: ${body.error.message}`;
    } catch (_) { /* not JSON */ }
    return `${response.status} ${response.statusText}`.trim();
  }

  async function loadConfig() {
    try {
      const response = await fetch("chat/config");
      if (response.ok) config = await response.json();
    } catch (_) { /* keep the defaults: no RAG */ }
    els.ragLabel.hidden = !config.rag_url;
    if (config.auth === false) els.key.placeholder = "not needed here";
  }

  // The picker: this service's models (kept as they were when the list fails), plus "rag" when there is a RAG service.
  async function loadModels() {
    let ids = null;
    try {
      const response = await fetch("v1/models", { headers: headers(false) });
      if (response.ok) {
        ids = (await response.json()).data.map((m) => m.id);
        setStatus("");
      } else if (response.status === 401 && !els.key.value.trim()) {
        setStatus("This service asks for an API key: enter yours above.", true);
      } else {
        setStatus(`Could not list the models: ${await errorText(response)}`, true);
      }
    } catch (err) {
      setStatus(`Could not list the models: ${err.message}`, true);
    }
    if (ids === null) ids = [...els.model.options].map((o) => o.value).filter((id) => id !== RAG_MODEL);
    if (config.rag_url) ids.push(RAG_MODEL);
    const keep = els.model.value;
    els.model.replaceChildren(...ids.map((id) => new Option(id, id)));
    chatModel = ids.includes(chatModel) && chatModel !== RAG_MODEL ? chatModel : ids.find((id) => id !== RAG_MODEL) || "";
    els.model.value = picked && ids.includes(keep) ? keep : chatModel || ids[0] || "";
    els.rag.checked = els.model.value === RAG_MODEL;
  }

  function addView(role, label) {
    const root = el("article", `msg ${role}`);
    const body = el("div", "body");
    root.append(el("div", "who", label), body);
    els.log.append(root);
    const detail = el("div", "source-detail");
    detail.hidden = true;
    return { root, body, detail };
  }

  function scrollDown() {
    els.log.scrollTop = els.log.scrollHeight;
  }

  // Server-sent events from a fetch body: lines split on "\n" only (a JSON string may hold U+2028), "data:" lines
  // joined until a blank line. Resolves true at "[DONE]", false when the stream ends without it.
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        buffer += value;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          let line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.endsWith("\r")) line = line.slice(0, -1);
          if (line.startsWith("data:")) {
            data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          } else if (line === "" && data.length) {
            const payload = data.join("\n");
            data = [];
            if (payload === "[DONE]") return true;
            onEvent(JSON.parse(payload));
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  async function ask(text) {
    const model = els.model.value;
    const rag = model === RAG_MODEL;
    const url = rag ? `${config.rag_url}/v1/chat/completions` : "v1/chat/completions";
    const messages = [...history, { role: "user", content: text }];
    addView("user", "You").body.textContent = text;
    const view = addView("assistant", model);
    view.root.dataset.state = "streaming";
    scrollDown();
    controller = new AbortController();
    setBusy(true);
    let answer = "";
    let citations = [];
    try {
      const response = await fetch(url, {
        method: "POST", headers: headers(true), signal: controller.signal,
        body: JSON.stringify({ model, messages, stream: true }),
      });
      if (!response.ok) throw new Error(await errorText(response));
      const complete = await readEvents(response.body, (event) => {
        if (event.error) throw new Error(event.error.message || "the answer failed");
        for (const choice of event.choices || []) {
          const delta = (choice.delta && choice.delta.content) || "";
          if (choice.index === 0 && delta) {
            answer += delta;
            view.body.append(delta); // a text node
            scrollDown();
          }
        }
        if (Array.isArray(event.citations)) citations = event.citations;
      });
      if (!complete) throw new Error("the stream ended before the answer was complete");
      history = [...messages, { role: "assistant", content: answer }];
      view.root.dataset.state = "done";
    } catch (err) {
      const stopped = err.name === "AbortError";
      view.root.dataset.state = stopped ? "stopped" : "error";
      const hint = rag ? " (is the RAG service up, and does its LLMSHIP_GATEWAY_CORS_ORIGINS list this page's origin?)" : "";
      const message = stopped ? "Stopped." : err instanceof TypeError ? `Could not reach ${url}: ${err.message}${hint}`
        : err.message;
      view.root.append(el("div", stopped ? "note" : "error", message));
    } finally {
      controller = null;
      setBusy(false);
    }
    if (citations.length) showCitations(view, answer, citations);
    scrollDown();
  }

  // The answer again with its [n] markers as buttons, then every source the model was given, as [n] buttons.
  function showCitations(view, answer, citations) {
    const byIndex = new Map(citations.map((c) => [c.index, c]));
    const parts = [];
    let last = 0;
    for (const match of answer.matchAll(MARKERS)) {
      const numbers = match[1].split(/[,;]/).map((n) => Number.parseInt(n, 10));
      if (!numbers.every((n) => byIndex.has(n))) continue;
      parts.push(answer.slice(last, match.index), ...numbers.map((n) => marker(view, byIndex.get(n))));
      last = match.index + match[0].length;
    }
    if (parts.length) view.body.replaceChildren(...parts, answer.slice(last));
    const list = el("div", "sources");
    list.append(el("span", "label", "Sources"));
    for (const c of citations) {
      const item = el("span", "source");
      item.append(marker(view, c), el("span", "source-name", c.title || c.doc_id));
      list.append(item);
    }
    view.root.append(list, view.detail);
  }

  function marker(view, citation) {
    const button = el("button", citation.cited ? "cite cited" : "cite", `[${citation.index}]`);
    button.type = "button";
    button.title = `${citation.title || citation.doc_id}${citation.cited ? " (cited)" : ""}`;
    button.addEventListener("click", () => showSource(view.detail, citation));
    return button;
  }

  function showSource(detail, c) {
    if (!detail.hidden && detail.dataset.index === String(c.index)) {
      detail.hidden = true; // a second click closes it
      return;
    }
    const facts = [c.doc_id];
    if (c.start_char !== null && c.start_char !== undefined) facts.push(`characters ${c.start_char}–${c.end_char}`);
    facts.push(`score ${Number(c.score).toFixed(3)}`, c.cited ? `cited (${c.cited_by})` : "not cited");
    const text = c.text.length > 800 ? `${c.text.slice(0, 800)}…` : c.text;
    detail.replaceChildren(el("div", "source-title", `[${c.index}] ${c.title || c.doc_id}`),
      el("div", "source-facts", facts.join(" · ")), el("blockquote", "source-text", text));
    detail.dataset.index = String(c.index);
    detail.hidden = false;
    scrollDown();
  }

  function setBusy(busy) {
    els.send.disabled = busy;
    els.stop.disabled = !busy;
  }

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.prompt.value.trim();
    if (!text || controller) return;
    if (!els.model.value) {
      setStatus("No model to ask yet: enter your API key, then pick a model.", true);
      return;
    }
    els.prompt.value = "";
    ask(text);
  });
  els.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.form.requestSubmit();
    }
  });
  els.stop.addEventListener("click", () => controller && controller.abort());
  els.reset.addEventListener("click", () => {
    if (controller) controller.abort();
    history = [];
    els.log.replaceChildren();
  });
  els.key.addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, els.key.value.trim()));
  els.key.addEventListener("change", loadModels);
  els.model.addEventListener("change", () => {
    picked = true;
    els.rag.checked = els.model.value === RAG_MODEL;
    if (!els.rag.checked) chatModel = els.model.value;
  });
  els.rag.addEventListener("change", () => {
    picked = true;
    els.model.value = els.rag.checked ? RAG_MODEL : chatModel;
  });

  els.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  loadConfig().then(loadModels).then(() => els.prompt.focus());
})();
