// The kimi-agent staff console: pending approvals across conversations (approve / reject
// with a reason), the hand-off queue, any conversation's history. It polls
// api/staff/overview every two seconds; the staff key stays in this tab's sessionStorage.
"use strict";
(function () {
  const TOOL_TEXT = { request_refund: "退款申请", open_ticket: "创建工单" };
  const REASON_TEXT = {
    complaint: "投诉", refund_dispute: "退款争议", order_problem: "订单问题",
    technical_issue: "技术问题", customer_request: "顾客要求人工", other: "其他",
  };
  const POLL_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const storage = {
    get() { try { return sessionStorage.getItem("kimi-agent-staff-key") || ""; } catch (e) { return ""; } },
    set(v) { try { sessionStorage.setItem("kimi-agent-staff-key", v); } catch (e) { /* none */ } },
    clear() { try { storage.clear(); } catch (e) { /* none */ } },
  };
  let key = storage.get();
  let timer = null;
  const decisions = {};   // session id -> {call id: {approve: bool, reason: str}}
  let lastOverview = "";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function api(path, options) {
    const init = Object.assign({}, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + key }, init.headers || {});
    return fetch(path, init);
  }

  function time(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString("zh-CN", { hour12: false });
  }

  // ------------------------------------------------------------------ login

  function showLogin(message) {
    $("login").classList.remove("hidden");
    $("console").classList.add("hidden");
    $("logout").classList.add("hidden");
    $("status").textContent = "未登录";
    const error = $("login-error");
    error.textContent = message || "";
    error.classList.toggle("hidden", !message);
  }

  function showConsole() {
    $("login").classList.add("hidden");
    $("console").classList.remove("hidden");
    $("logout").classList.remove("hidden");
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    key = $("key").value.trim();
    storage.set(key);
    refresh();
  });
  $("logout").addEventListener("click", () => {
    key = "";
    storage.clear();
    if (timer) clearTimeout(timer);
    showLogin("");
  });

  // ------------------------------------------------------------------ approvals

  async function decide(sessionId, item) {
    const chosen = decisions[sessionId] || {};
    const approved = [];
    const rejected = {};
    for (const [callId, d] of Object.entries(chosen)) {
      if (d.approve) approved.push(callId);
      else rejected[callId] = d.reason;
    }
    item.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const response = await api("api/staff/conversations/" + encodeURIComponent(sessionId) +
      "/approvals", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ approved: approved, rejected: rejected }),
    });
    delete decisions[sessionId];
    if (!response.ok) {
      let message = "提交失败";
      try { message = (await response.json()).error.message; } catch (e) { /* keep */ }
      item.appendChild(el("p", "error", message));
    } else {
      item.appendChild(el("p", "done", "已提交，机器人正在继续处理这段对话。"));
    }
    lastOverview = "";
    setTimeout(refresh, 300);
  }

  function approvalItem(conversation) {
    const item = el("div", "item");
    item.dataset.session = conversation.session_id;
    const meta = el("div", "meta");
    meta.appendChild(el("span", "", "顾客 "));
    meta.lastChild.appendChild(el("b", "", conversation.customer_id));
    meta.appendChild(el("span", "", "对话 " + conversation.session_id));
    meta.appendChild(el("span", "", "提交于 " + time(conversation.since)));
    item.appendChild(meta);
    const total = conversation.pending.length;
    for (const call of conversation.pending) {
      const box = el("div", "call");
      box.dataset.callId = call.call_id;
      box.appendChild(el("span", "tag", TOOL_TEXT[call.tool] || call.tool));
      box.appendChild(el("pre", "", JSON.stringify(call.arguments, null, 2)));
      const actions = el("div", "actions");
      const approve = el("button", "approve", "批准");
      approve.type = "button";
      const reason = el("input");
      reason.placeholder = "拒绝原因（拒绝时必填）";
      reason.setAttribute("aria-label", "拒绝原因");
      const reject = el("button", "reject", "拒绝");
      reject.type = "button";
      const record = (d) => {
        decisions[conversation.session_id] = decisions[conversation.session_id] || {};
        decisions[conversation.session_id][call.call_id] = d;
        box.querySelectorAll("button").forEach((b) => { b.disabled = true; });
        box.appendChild(el("p", "muted", d.approve ? "已选择：批准" : "已选择：拒绝（" + d.reason + "）"));
        if (Object.keys(decisions[conversation.session_id]).length === total) {
          decide(conversation.session_id, item);
        }
      };
      approve.addEventListener("click", () => record({ approve: true }));
      reject.addEventListener("click", () => {
        const why = reason.value.trim();
        if (!why) { reason.focus(); reason.classList.add("error"); return; }
        record({ approve: false, reason: why });
      });
      actions.appendChild(approve);
      actions.appendChild(reason);
      actions.appendChild(reject);
      box.appendChild(actions);
      item.appendChild(box);
    }
    return item;
  }

  // ------------------------------------------------------------------ hand-offs

  function handoffItem(h) {
    const item = el("div", "item");
    item.dataset.session = h.session_id;
    const meta = el("div", "meta");
    meta.appendChild(el("span", "tag", REASON_TEXT[h.reason] || h.reason || "转人工"));
    if (h.queue) meta.appendChild(el("b", "", h.queue));
    meta.appendChild(el("span", "", "顾客 " + h.customer_id));
    meta.appendChild(el("span", "", "对话 " + h.session_id));
    meta.appendChild(el("span", "", time(h.since)));
    item.appendChild(meta);
    if (h.summary) item.appendChild(el("div", "summary", h.summary));
    const actions = el("div", "actions");
    const view = el("button", "secondary", "查看对话");
    view.type = "button";
    view.addEventListener("click", () => showConversation(h.session_id));
    const release = el("button", "secondary", "交还智能客服");
    release.type = "button";
    release.addEventListener("click", async () => {
      release.disabled = true;
      await api("api/staff/conversations/" + encodeURIComponent(h.session_id) + "/release",
        { method: "POST" });
      lastOverview = "";
      refresh();
    });
    actions.appendChild(view);
    actions.appendChild(release);
    item.appendChild(actions);
    return item;
  }

  async function showConversation(sessionId) {
    const box = $("conversation");
    $("conversation-id").textContent = sessionId;
    const response = await api("api/staff/conversations/" + encodeURIComponent(sessionId) +
      "/messages");
    box.textContent = "";
    if (!response.ok) { box.appendChild(el("p", "error", "无法读取对话")); return; }
    const body = await response.json();
    const who = { user: "顾客", assistant: "机器人", tool: "工具", system: "系统" };
    for (const m of body.messages) {
      const line = el("div", "msg " + m.role);
      line.appendChild(el("span", "who", who[m.role] || m.role));
      let text = typeof m.content === "string" ? m.content : JSON.stringify(m.content || "");
      if (m.tool_calls) {
        text += (text ? "\n" : "") + m.tool_calls.map((c) =>
          "→ " + c.function.name + " " + c.function.arguments).join("\n");
      }
      line.appendChild(document.createTextNode(text));
      box.appendChild(line);
    }
  }

  // ------------------------------------------------------------------ polling

  function render(overview) {
    const approvals = $("approvals");
    const handoffs = $("handoffs");
    const busy = new Set(Object.keys(decisions));
    // keep the items a person is deciding on; rebuild the rest
    for (const child of Array.from(approvals.children)) {
      if (!busy.has(child.dataset.session)) child.remove();
    }
    for (const conversation of overview.approvals) {
      if (!busy.has(conversation.session_id)) approvals.appendChild(approvalItem(conversation));
    }
    if (!approvals.children.length) approvals.appendChild(el("p", "empty", "暂无待审批的操作"));
    handoffs.textContent = "";
    for (const h of overview.handoffs) handoffs.appendChild(handoffItem(h));
    if (!overview.handoffs.length) handoffs.appendChild(el("p", "empty", "暂无转人工的对话"));
    for (const [id, n] of [["approvals-count", overview.approvals.length],
      ["handoffs-count", overview.handoffs.length]]) {
      $(id).textContent = String(n);
      $(id).classList.toggle("zero", n === 0);
    }
  }

  async function refresh() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (!key) { showLogin(""); return; }
    try {
      const response = await api("api/staff/overview");
      if (response.status === 401 || response.status === 403) {
        let message = "密钥无效";
        try { message = (await response.json()).error.message; } catch (e) { /* keep */ }
        key = "";
        storage.clear();
        showLogin(message);
        return;
      }
      const overview = await response.json();
      showConsole();
      const running = overview.running.length;
      $("status").textContent = "在线 · " + (running ? running + " 个对话正在回复" : "实时刷新中");
      const text = JSON.stringify([overview.approvals, overview.handoffs]);
      if (text !== lastOverview) {
        lastOverview = text;
        render(overview);
      }
    } catch (e) {
      $("status").textContent = "连接中断，正在重试…";
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  refresh();
})();
