// Put the kimi-agent chat widget on any page with one tag (the token minted by your server):
//   <script src="https://bot.example.com/support/static/embed.js" data-token="..." async></script>
// It adds a "在线客服" button at the bottom right that opens the widget in an iframe served
// by the same kimi-agent app. data-open="true" opens it at once; data-label sets the text.
"use strict";
(function () {
  const script = document.currentScript;
  if (!script) return;
  const base = script.src.replace(/\/static\/embed\.js(?:[?#].*)?$/, "");
  const token = script.dataset.token || "";
  const label = script.dataset.label || "在线客服";

  const frame = document.createElement("iframe");
  frame.src = base + "/widget#token=" + encodeURIComponent(token);
  frame.title = label;
  frame.setAttribute("allow", "clipboard-write");
  Object.assign(frame.style, {
    position: "fixed", right: "20px", bottom: "84px", width: "380px", height: "600px",
    maxWidth: "calc(100vw - 40px)", maxHeight: "calc(100vh - 110px)", border: "none",
    borderRadius: "14px", boxShadow: "0 8px 30px rgba(0,0,0,.18)", background: "#fff",
    zIndex: "2147483000", display: "none",
  });

  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  Object.assign(button.style, {
    position: "fixed", right: "20px", bottom: "20px", height: "48px", padding: "0 20px",
    border: "none", borderRadius: "24px", background: "#1677ff", color: "#fff",
    font: "15px 'PingFang SC','Microsoft YaHei',sans-serif", cursor: "pointer",
    boxShadow: "0 4px 14px rgba(22,119,255,.4)", zIndex: "2147483000",
  });
  button.addEventListener("click", () => {
    const open = frame.style.display === "none";
    frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", String(open));
  });

  function mount() {
    document.body.appendChild(frame);
    document.body.appendChild(button);
    if (script.dataset.open === "true") button.click();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
