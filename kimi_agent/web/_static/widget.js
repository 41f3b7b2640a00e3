// The kimi-agent chat widget: no build step, no dependencies. It reads the customer token
// from the page address (#token=...), talks to the API next to it (relative URLs, so the
// widget works under any mount prefix), streams each run as Server-Sent Events and keeps
// following a run after a dropped connection (GET api/conversation/events?after=N).
"use strict";
(function () {
  const APPROVAL_TEXT = {
    request_refund: "退款申请已提交，正在等待工作人员审核，审核通过后会继续为您处理。",
  };
  const APPROVAL_FALLBACK = "该操作需要工作人员审核，审核完成后会继续为您处理。";
  const REASON_TEXT = {
    complaint: "投诉", refund_dispute: "退款争议", order_problem: "订单问题",
    technical_issue: "技术问题", customer_request: "人工服务", other: "人工服务",
  };
  const GENERIC_LABEL = "正在处理…";
  const ERROR_TEXT = {
    held_by_person: "这段对话已由人工客服接手，请等待工作人员回复。",
    awaiting_approval: "上一步操作正在等待工作人员审核，请稍候。",
    conversation_busy: "上一条消息还在回复中，请稍候。",
    rate_limited: "您发送得太快了，请稍后再试。",
    message_too_long: "消息太长了，请精简后再发送。",
    invalid_token: "登录状态已过期，请刷新页面后重试。",
    unavailable: "客服系统正在维护，请稍后再试。",
    store_unavailable: "客服系统暂时无法连接，请稍后再试。",
  };
  const POLL_MS = 1500;
  const HELD_POLL_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const messages = $("messages");
  const input = $("input");
  const send = $("send");
  const notice = $("notice");

  // sessionStorage keeps the token across reloads; in a third-party frame the browser may
  // refuse storage altogether, and then the address alone has to do
  function stored(value) {
    try {
      if (value) sessionStorage.setItem("kimi-agent-token", value);
      return sessionStorage.getItem("kimi-agent-token") || "";
    } catch (e) { return value || ""; }
  }
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token") || stored(null);
  if (params.get("token")) stored(params.get("token"));

  const state = {
    busy: false, held: false, pending: false, seenRuns: new Set(), timer: null,
  };

  function headers(extra) {
    return Object.assign({ Authorization: "Bearer " + token }, extra || {});
  }

  // ------------------------------------------------------------------ rendering

  function scroll() { messages.scrollTop = messages.scrollHeight; }

  function row(who) {
    const div = document.createElement("div");
    div.className = "row " + who;
    messages.appendChild(div);
    return div;
  }

  function bubble(who, text) {
    const r = row(who);
    const b = document.createElement("div");
    b.className = "bubble";
    b.textContent = text || "";
    r.appendChild(b);
    scroll();
    return { row: r, bubble: b };
  }

  function card(parent, text, kind) {
    const c = document.createElement("div");
    c.className = "card" + (kind ? " " + kind : "");
    c.textContent = text;
    parent.appendChild(c);
    scroll();
    return c;
  }

  function showNotice(text) {
    notice.textContent = text;
    notice.classList.remove("hidden");
    scroll();
  }

  function hideNotice() { notice.classList.add("hidden"); }

  function setComposer() {
    const off = state.busy || state.held || state.pending || !token;
    input.disabled = off;
    send.disabled = off;
    if (state.held) input.placeholder = "已转人工客服，请等待工作人员与您联系";
    else if (state.pending) input.placeholder = "正在等待工作人员审核…";
    else if (state.busy) input.placeholder = "正在回复中…";
    else input.placeholder = "请输入您的问题，按回车发送";
  }

  function held(handoff) {
    state.held = true;
    const queue = handoff && handoff.queue ? "（" + handoff.queue + "）" : "";
    const reason = handoff && REASON_TEXT[handoff.reason] ? REASON_TEXT[handoff.reason] : "";
    showNotice("已为您转接人工客服" + (queue || (reason ? "（" + reason + "）" : "")) +
      "，稍后将由工作人员接手这段对话。在此期间智能客服不再回复。");
    $("subtitle").textContent = "人工客服接待中";
    setComposer();
    poll(HELD_POLL_MS);
  }

  // A run as it is rendered: a bubble per step of text, the tool progress under it.
  function RunView() {
    this.steps = {};
    this.lastStep = null;
    this.tools = {};
    this.cards = [];
  }
  RunView.prototype.step = function (n) {
    if (!this.steps[n]) {
      const view = bubble("bot", "");
      view.bubble.classList.add("streaming");
      view.bubble.classList.add("empty");
      const progress = document.createElement("div");
      progress.className = "progress";
      view.row.appendChild(progress);
      this.steps[n] = { row: view.row, bubble: view.bubble, progress: progress, text: "" };
      this.lastStep = n;
    }
    return this.steps[n];
  };
  RunView.prototype.finishStep = function (n) {
    const s = this.steps[n];
    if (!s) return;
    s.bubble.classList.remove("streaming");
    if (!s.text) s.bubble.classList.add("hidden");
  };
  RunView.prototype.handle = function (record) {
    const kind = record.kind;
    if (kind === "text_delta") {
      const s = this.step(record.step);
      s.text += record.text;
      s.bubble.textContent = s.text;
      s.bubble.classList.remove("empty");
      scroll();
    } else if (kind === "reasoning_delta") {
      // sent only when the app lets customers see the reasoning: shown above the step's text
      const s = this.step(record.step);
      if (!s.reasoning) {
        s.reasoning = document.createElement("div");
        s.reasoning.className = "reasoning";
        s.row.insertBefore(s.reasoning, s.bubble);
      }
      s.reasoning.textContent += record.text;
      scroll();
    } else if (kind === "tool_call_started") {
      const s = this.step(record.step);
      const line = document.createElement("div");
      line.className = "step running";
      line.dataset.tool = record.name;
      const dot = document.createElement("span");
      dot.className = "dot";
      const label = document.createElement("span");
      label.textContent = record.label || GENERIC_LABEL;
      line.appendChild(dot);
      line.appendChild(label);
      s.progress.appendChild(line);
      this.tools[record.step + "/" + record.call_id] = line;
      scroll();
    } else if (kind === "tool_call_finished") {
      const line = this.tools[record.step + "/" + record.call_id];
      if (line) {
        const label = line.lastChild;
        const base = label.textContent.replace(/…$/, "");
        line.classList.remove("running");
        if (record.status === "ok") {
          line.classList.add("ok");
          label.textContent = /^正在/.test(base) ? base.replace(/^正在/, "已") : base + " ✓";
        } else if (record.status === "pending_approval") {
          line.classList.add("waiting");
          label.textContent = base.replace(/^正在/, "") + " · 等待审核";
        } else if (record.status === "rejected") {
          line.classList.add("failed");
          label.textContent = base + " · 未通过审核";
        } else {
          line.classList.add("failed");
          label.textContent = base + " · 未完成";
        }
      }
    } else if (kind === "step_finished") {
      this.finishStep(record.step);
    } else if (kind === "approval_requested") {
      const anchor = this.lastStep !== null ? this.steps[this.lastStep].row : row("bot");
      for (const p of record.pending || []) {
        const c = card(anchor, APPROVAL_TEXT[p.tool] || APPROVAL_FALLBACK, "pending");
        c.dataset.callId = p.call_id;
        c.id = "approval-" + p.call_id;
      }
      state.pending = true;
    } else if (kind === "handoff") {
      held(record);
    } else if (kind === "error") {
      const anchor = this.lastStep !== null ? this.steps[this.lastStep].row : row("bot");
      card(anchor, record.message || "抱歉，服务暂时出了点问题，请稍后再试。", "error");
    } else if (kind === "done") {
      for (const n of Object.keys(this.steps)) this.finishStep(n);
      if (record.status === "pending_approval") state.pending = true;
    }
  };

  function settleApprovalCards() {
    for (const c of document.querySelectorAll(".card.pending")) {
      c.classList.remove("pending");
      c.classList.add("approved");
      c.textContent = "工作人员已审核，正在继续为您处理。";
    }
  }

  // ------------------------------------------------------------------ SSE over fetch

  async function readEvents(response, onRecord) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let last = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let data = "";
        for (const line of frame.split("\n")) {
          if (line.startsWith("id:")) last = line.slice(3).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) onRecord(JSON.parse(data), last);
      }
    }
    return last;
  }

  async function errorOf(response) {
    try { return (await response.json()).error || {}; } catch (e) { return {}; }
  }

  // Follow a run to its end, reconnecting from the last event after a dropped connection.
  async function stream(first, view) {
    let response = first;
    let runId = null;
    let after = -1;
    let finished = false;
    for (let attempt = 0; attempt < 5 && !finished; attempt++) {
      try {
        await readEvents(response, (record, id) => {
          if (id) {
            const cut = id.lastIndexOf(":");
            runId = id.slice(0, cut);
            after = parseInt(id.slice(cut + 1), 10);
          }
          if (record.kind === "run_started") state.seenRuns.add(record.run_id);
          if (record.kind === "done" || record.kind === "error") finished = true;
          view.handle(record);
        });
        if (finished || !runId) break;
      } catch (e) {
        if (!runId) throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
      response = await fetch("api/conversation/events?run_id=" + encodeURIComponent(runId) +
        "&after=" + after, { headers: headers() });
      if (!response.ok) break;
    }
  }

  async function follow(runId) {
    state.seenRuns.add(runId);
    state.busy = true;
    setComposer();
    try {
      const response = await fetch("api/conversation/events?run_id=" +
        encodeURIComponent(runId), { headers: headers() });
      if (response.ok) await stream(response, new RunView());
    } finally {
      state.busy = false;
      setComposer();
    }
  }

  // ------------------------------------------------------------------ talking

  async function submit(text) {
    bubble("user", text);
    state.busy = true;
    setComposer();
    const view = new RunView();
    try {
      const response = await fetch("api/conversation/messages", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ message: text }),
      });
      if (!response.ok) {
        const error = await errorOf(response);
        let text = ERROR_TEXT[error.code] || "发送失败，请稍后再试。";
        if (error.code === "held_by_person") held(null);
        else if (error.code === "awaiting_approval") { state.pending = true; poll(POLL_MS); }
        else if (response.status === 401) {
          text = ERROR_TEXT.invalid_token;
          showNotice(text);
        }
        card(row("bot"), text, "error");
        return;
      }
      await stream(response, view);
    } catch (e) {
      card(row("bot"), "网络连接中断，请稍后再试。", "error");
    } finally {
      state.busy = false;
      setComposer();
      if (state.pending) poll(POLL_MS);
      if (!state.held && !state.pending) input.focus();
    }
  }

  // While a refund waits for staff (or a person holds the conversation) the widget asks
  // for the conversation's state; a run started by staff's decision is followed live.
  function poll(ms) {
    if (state.timer) return;
    state.timer = setTimeout(async () => {
      state.timer = null;
      let s;
      try {
        const response = await fetch("api/conversation", { headers: headers() });
        if (!response.ok) return poll(ms * 2);
        s = await response.json();
      } catch (e) { return poll(ms * 2); }
      const run = s.run;
      if (s.status === "running" && run && (run.elsewhere || !run.run_id)) {
        // a run on another server process: its events are not streamed here; wait for
        // it to end, then the shared history has it
        return poll(ms);
      }
      if (run && !state.seenRuns.has(run.run_id)) {
        settleApprovalCards();
        state.pending = false;
        await follow(run.run_id);
        return refresh();
      }
      if (state.pending && s.status !== "pending_approval" && s.status !== "running") {
        // decided and answered where this page could not follow (another server process):
        // the history has it
        state.pending = false;
        messages.textContent = "";
        await loadHistory();
      }
      apply(s, false);
    }, ms);
  }

  function apply(s, initial) {
    if (s.status === "handoff") {
      if (!state.held || initial) held(s.handoff);
      else poll(HELD_POLL_MS);
      return;
    }
    if (state.held) {
      state.held = false;
      hideNotice();
      $("subtitle").textContent = "智能客服在线";
      card(row("bot"), "人工客服已结束接待，智能客服继续为您服务。", "approved");
    }
    state.pending = s.status === "pending_approval";
    if (state.pending) {
      if (initial && !document.querySelector(".card.pending")) {
        for (const p of s.pending) {
          card(row("bot"), APPROVAL_TEXT[p.tool] || APPROVAL_FALLBACK, "pending");
        }
      }
      poll(POLL_MS);
    }
    setComposer();
  }

  async function refresh() {
    const response = await fetch("api/conversation", { headers: headers() });
    if (response.ok) apply(await response.json(), false);
  }

  async function loadHistory(pendingIds) {
    const response = await fetch("api/conversation/messages", { headers: headers() });
    if (!response.ok) return false;
    const body = await response.json();
    const waiting = new Set(pendingIds || []);
    for (const m of body.messages) {
      if (m.role === "user" && typeof m.content === "string") bubble("user", m.content);
      else if (m.role === "assistant" && (m.content || m.tool_calls)) {
        const view = bubble("bot", m.content || "");
        if (!m.content) view.bubble.classList.add("hidden");
        if (m.tool_calls) {
          const progress = document.createElement("div");
          progress.className = "progress";
          for (const c of m.tool_calls) {
            const base = (c.label || GENERIC_LABEL).replace(/…$/, "");
            const line = document.createElement("div");
            const dot = document.createElement("span");
            dot.className = "dot";
            const label = document.createElement("span");
            if (waiting.has(c.call_id)) {
              line.className = "step waiting";
              label.textContent = base.replace(/^正在/, "") + " · 等待审核";
            } else {
              line.className = "step ok";
              label.textContent = /^正在/.test(base) ? base.replace(/^正在/, "已") : base + " ✓";
            }
            line.dataset.tool = c.name;
            line.appendChild(dot);
            line.appendChild(label);
            progress.appendChild(line);
          }
          view.row.appendChild(progress);
        }
      }
    }
    scroll();
    return true;
  }

  async function start() {
    try {
      const config = await (await fetch("api/config")).json();
      $("title").textContent = config.title;
      document.title = config.title;
      bubble("bot", config.greeting);
    } catch (e) { /* the defaults in the page stay */ }
    if (!token) {
      showNotice("缺少登录凭证：请从网站页面打开客服窗口。");
      setComposer();
      return;
    }
    const response = await fetch("api/conversation", { headers: headers() });
    if (!response.ok) {
      const error = await errorOf(response);
      showNotice(response.status === 401 ? "登录状态已过期，请刷新页面后重试。" :
        (error.message || "客服暂时无法连接，请稍后再试。"));
      state.held = true;
      setComposer();
      return;
    }
    const s = await response.json();
    if (s.run) state.seenRuns.add(s.run.run_id);
    if (s.status === "running") {
      // a reply is under way (the page was reloaded mid-run): wait for it, then show all
      state.busy = true;
      setComposer();
      const wait = bubble("bot", "正在回复中…");
      wait.bubble.classList.add("typing");
      let followed = false;
      if (s.run && s.run.run_id && !s.run.elsewhere) {
        const events = await fetch("api/conversation/events?run_id=" +
          encodeURIComponent(s.run.run_id), { headers: headers() });
        if (events.ok) { await readEvents(events, () => {}); followed = true; }
      }
      // a run on another server process (409 run_on_other_replica) is not streamed here:
      // ask again shortly; once it ended the history has it
      if (!followed) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      messages.textContent = "";
      state.busy = false;
      return start();
    }
    await loadHistory(s.pending.map((p) => p.call_id));
    apply(s, true);
    setComposer();
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || input.disabled) return;
    input.value = "";
    submit(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });

  start();
})();
