/// The page `sockway serve` shows at `/`: an echo and chat client on sockjs-client with a transport picker.
enum DemoPage {
    static func html(clientScriptURL: String, endpoints: [String]) -> String {
        let chat = endpoints.contains("/chat") ? "/chat" : (endpoints.first ?? "/echo")
        let echo = endpoints.contains("/echo") ? "/echo" : (endpoints.first ?? "/echo")
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>Sockway</title>
            <style>
              body { font: 15px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d2430; }
              h1 { font-size: 1.4rem; } fieldset { border: 1px solid #ccd; border-radius: 6px; margin: 1rem 0; }
              #log { height: 18rem; overflow-y: auto; background: #f6f7f9; border: 1px solid #dde; border-radius: 6px; padding: .5rem; font-family: ui-monospace, monospace; font-size: 13px; white-space: pre-wrap; }
              .sys { color: #777; } .me { color: #1b5fa8; } input[type=text] { width: 70%; }
            </style>
            <script src="\(clientScriptURL)"></script>
            </head>
            <body>
            <h1>Sockway</h1>
            <p>One session, whichever transport gets through. Pick a service and a transport, connect, and type.</p>
            <fieldset>
              <label>Service <select id="service"><option value="\(chat)">chat (broadcast)</option><option value="\(echo)">echo</option></select></label>
              <label>Transport <select id="transport">
                <option value="">best available</option><option>websocket</option><option>xhr-streaming</option>
                <option>eventsource</option><option>htmlfile</option><option>xhr-polling</option><option>jsonp-polling</option>
              </select></label>
              <button id="connect">Connect</button> <button id="disconnect" disabled>Disconnect</button>
            </fieldset>
            <div id="log"></div>
            <form id="form"><input id="input" type="text" autocomplete="off" placeholder="message" disabled> <button disabled id="send">Send</button></form>
            <script>
            var sock = null;
            var log = document.getElementById('log');
            function line(text, cls) {
              var div = document.createElement('div'); div.textContent = text; if (cls) div.className = cls;
              log.appendChild(div); log.scrollTop = log.scrollHeight;
            }
            function enable(open) {
              document.getElementById('connect').disabled = open; document.getElementById('disconnect').disabled = !open;
              document.getElementById('input').disabled = !open; document.getElementById('send').disabled = !open;
            }
            document.getElementById('connect').onclick = function () {
              if (typeof SockJS === 'undefined') { line('sockjs-client did not load from \(clientScriptURL); start sockway with --sockjs-url', 'sys'); return; }
              var transport = document.getElementById('transport').value;
              var url = document.getElementById('service').value;
              sock = new SockJS(url, null, transport ? { transports: [transport] } : {});
              line('connecting to ' + url + '…', 'sys');
              sock.onopen = function () { line('open via ' + sock.transport, 'sys'); enable(true); };
              sock.onmessage = function (e) { line(e.data); };
              sock.onclose = function (e) { line('closed: ' + e.code + ' ' + e.reason, 'sys'); enable(false); sock = null; };
            };
            document.getElementById('disconnect').onclick = function () { if (sock) sock.close(); };
            document.getElementById('form').onsubmit = function (e) {
              e.preventDefault(); var input = document.getElementById('input');
              if (sock && input.value) { sock.send(input.value); line('> ' + input.value, 'me'); input.value = ''; }
            };
            </script>
            </body>
            </html>
            """
    }
}
