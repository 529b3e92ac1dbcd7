/// The console page itself: HTML, CSS and a little plain JavaScript, all in the binary (no
/// build step, no CDN: it works on an appliance without internet). It holds no data: the
/// script fetches the server-rendered sections (`/console/fragments/…`) with the bearer
/// token, when one is set, and swaps them in whenever `/console/events` says something
/// changed. The token is asked for once and kept in this tab only (sessionStorage), and goes
/// in an Authorization header, never in a URL (URLs end up in logs and history).
enum ConsoleShell {
    /// Built by joining, so the script and style inside the tags are exactly `script` and
    /// `css`, whose hashes the Content-Security-Policy allows (`ConsoleRoutes`).
    static let page = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>volumed</title>
        <style>
        """ + css + """
        </style>
        </head>
        <body>
        <header>
          <h1>volumed</h1>
          <span id="connection" class="connection connecting" role="status">connecting…</span>
        </header>
        <form id="login" hidden>
          <p>This volumed needs its API token (<code>VOLUMED_HTTP_TOKEN</code>). It is kept in this tab only.</p>
          <p id="login-error" class="bad" hidden></p>
          <input id="token" type="password" autocomplete="off" placeholder="token" aria-label="API token" required>
          <button type="submit">Open the console</button>
        </form>
        <main id="content" aria-live="polite"></main>
        <script>
        """ + script + """
        </script>
        </body>
        </html>
        """

    static let css = """
    :root { --ok: #2e7d32; --bad: #c62828; --warn: #ef6c00; --p50: #1565c0; --p95: #90caf9; --muted: #6b7280; --line: #e5e7eb; }
    * { box-sizing: border-box; }
    body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #111827; background: #f9fafb; }
    header { display: flex; align-items: center; gap: 1rem; padding: .6rem 1.2rem; background: #111827; color: #fff; }
    header h1 { font-size: 1.1rem; margin: 0; }
    .connection { font-size: .85rem; padding: .1rem .6rem; border-radius: 1rem; background: #374151; }
    .connection.live { background: var(--ok); }
    .connection.lost { background: var(--bad); }
    main, form { padding: 0 1.2rem 2rem; max-width: 1400px; }
    form { padding-top: 1rem; }
    section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .4rem 1rem 1rem; margin-top: 1rem; }
    h2 { font-size: 1.05rem; margin: .6rem 0; } h3 { font-size: .95rem; margin: 1rem 0 .4rem; }
    small { color: var(--muted); font-weight: normal; }
    table { border-collapse: collapse; width: 100%; font-size: .85rem; }
    th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { color: var(--muted); font-weight: 600; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; } td.zero { color: #d1d5db; }
    .id, .path, .export, code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .8rem; }
    pre { margin: 0; white-space: pre-wrap; word-break: break-all; }
    .empty { color: var(--muted); font-style: italic; }
    .tiles { display: flex; flex-wrap: wrap; gap: .6rem; margin-bottom: .8rem; }
    .tile { border: 1px solid var(--line); border-radius: 6px; padding: .4rem .8rem; min-width: 7rem; display: flex; flex-direction: column; }
    .tile b { font-size: 1.4rem; } .tile span { color: var(--muted); }
    .tile.failed b { color: var(--bad); } .tile.completed b { color: var(--ok); } .tile.executing b { color: var(--p50); }
    .charts { display: flex; flex-wrap: wrap; gap: 1rem; margin: .8rem 0; }
    figure { margin: 0; } figcaption { font-size: .8rem; color: var(--muted); }
    svg.chart text { font-size: 10px; fill: #374151; } svg.chart .tick, svg.chart .peak, svg.chart .empty { fill: var(--muted); }
    svg.chart .ok { fill: var(--ok); } svg.chart .bad { fill: var(--bad); } svg.chart .p50 { fill: var(--p50); } svg.chart .p95 { fill: var(--p95); }
    svg.chart .axis { stroke: #d1d5db; }
    .badge { display: inline-block; padding: 0 .45rem; border-radius: .7rem; font-size: .75rem; background: #e5e7eb; }
    .badge.completed { background: #c8e6c9; } .badge.failed { background: #ffcdd2; } .badge.executing { background: #bbdefb; }
    .badge.pending { background: #fff9c4; } .badge.cancelled { background: #e0e0e0; }
    .ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
    .advice { color: var(--muted); margin-top: .2rem; }
    .code { color: var(--bad); }
    button.cancel { border: 1px solid var(--bad); color: var(--bad); background: #fff; border-radius: 4px; cursor: pointer; }
    button.cancel:hover { background: #ffebee; }
    .appliance { margin-bottom: .8rem; }
    .stamp { color: var(--muted); font-size: .8rem; }
    table.facts th { width: 10rem; }
    """

    static let script = #"""
    "use strict";
    const KEY = "volumed-console-token";
    const content = document.getElementById("content");
    const connection = document.getElementById("connection");
    const login = document.getElementById("login");
    let refreshTimer = null, streamAbort = null, lastEvent = 0, live = false;

    function token() { return sessionStorage.getItem(KEY); }
    function headers() { const t = token(); return t ? { "Authorization": "Bearer " + t } : {}; }
    function setConnection(state, text) { connection.className = "connection " + state; connection.textContent = text; live = state === "live"; }

    class Unauthorized extends Error {}

    async function call(path, options = {}) {
      const response = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) }, cache: "no-store" });
      if (response.status === 401) throw new Unauthorized();
      if (!response.ok) throw new Error(path + " answered " + response.status + ": " + (await response.text()));
      return response;
    }

    function askForToken(message) {
      // The page and its stream may both be refused: the second must not hide the first's message.
      if (!login.hidden && !message) return;
      sessionStorage.removeItem(KEY);
      if (streamAbort) streamAbort.abort();
      content.innerHTML = "";
      login.hidden = false;
      const error = document.getElementById("login-error");
      error.hidden = !message; error.textContent = message || "";
      setConnection("lost", "token needed");
      document.getElementById("token").focus();
    }

    login.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, document.getElementById("token").value);
      document.getElementById("token").value = "";
      login.hidden = true;
      start();
    });

    function currentView() {
      const match = /^#op=([0-9a-f-]{36})$/.exec(location.hash);
      return match ? "/console/fragments/operations/" + match[1] : "/console/fragments/overview";
    }

    async function refresh() {
      refreshTimer = null;
      try {
        const html = await (await call(currentView())).text();
        content.innerHTML = html;
        content.dataset.loaded = String(Date.now());
      } catch (error) {
        if (error instanceof Unauthorized) { askForToken(token() ? "That token was refused." : ""); return; }
        setConnection("lost", "connection lost — retrying");
      }
    }

    // Several changes in a burst make one refresh.
    function scheduleRefresh() { if (!refreshTimer) refreshTimer = setTimeout(refresh, 100); }

    // Server-Sent Events read through fetch, so the token can go in a header.
    async function stream() {
      streamAbort = new AbortController();
      try {
        const response = await call("/console/events", { signal: streamAbort.signal });
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        setConnection("live", "live");
        lastEvent = Date.now();
        scheduleRefresh();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          lastEvent = Date.now();
          if (!live) setConnection("live", "live");
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end); buffer = buffer.slice(end + 2);
            if (/^event: change$/m.test(message)) scheduleRefresh();
          }
        }
      } catch (error) {
        if (error instanceof Unauthorized) { askForToken(token() ? "That token was refused." : ""); return; }
      }
      if (!login.hidden) return;
      setConnection("lost", "connection lost — retrying");
      setTimeout(stream, 2000);
    }

    // The fallback: a silent stream (a proxy holding it, a sleeping laptop) counts as lost,
    // and while it is lost the page still polls.
    setInterval(() => {
      if (!login.hidden) return;
      if (live && Date.now() - lastEvent > 12000) {
        setConnection("lost", "connection lost — retrying");
        if (streamAbort) streamAbort.abort();
      }
      if (!live) scheduleRefresh();
    }, 3000);

    content.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-cancel]");
      if (!button) return;
      const id = button.dataset.cancel;
      if (!confirm("Cancel " + button.dataset.what + " (" + id + ")?\nA pending operation is cancelled at once; an executing one stops after its current step.")) return;
      button.disabled = true;
      try {
        await call("/console/operations/" + id + "/cancel", { method: "POST" });
      } catch (error) {
        if (error instanceof Unauthorized) { askForToken("That token was refused."); return; }
        alert("Cancel failed: " + error.message);
      }
      scheduleRefresh();
    });

    // By-id link states and reconcile's repairs send no notification: refresh every 5 s too.
    setInterval(() => { if (login.hidden) scheduleRefresh(); }, 5000);

    window.addEventListener("hashchange", scheduleRefresh);

    function start() { refresh(); stream(); }
    start();
    """#
}
