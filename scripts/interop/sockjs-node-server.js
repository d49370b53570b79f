// Reference SockJS server (Debian node-sockjs 0.3.24) exposing the endpoints
// that sockjs-protocol.py expects. Listens on 127.0.0.1 only.
// Run with NODE_PATH=/usr/share/nodejs; PORT picks the port (default 8081). Used by scripts/test (the
// Swift client against another SockJS server) and by the sockjs-node comparison.
'use strict';
const http = require('http');
const sockjs = require('sockjs');

const PORT = parseInt(process.env.PORT || '8081', 10);
const HOST = '127.0.0.1';
const quiet = !process.env.SOCKJS_VERBOSE;
const opts = {
  sockjs_url: 'http://localhost:8080/lib/sockjs.js',
  response_limit: 4096,
  log: function (severity, line) { if (!quiet || severity === 'error') console.log('[' + severity + '] ' + line); },
};

const echo = sockjs.createServer(opts);
echo.on('connection', function (conn) {
  conn.on('data', function (m) { conn.write(m); });
});

const closer = sockjs.createServer(opts);
closer.on('connection', function (conn) {
  conn.close(3000, 'Go away!');
});

const server = http.createServer();
server.addListener('request', function (req, res) {
  res.setHeader('Content-Type', 'text/plain');
  res.writeHead(404);
  res.end('404 - Nothing here (sockjs-node reference server)');
});
server.addListener('upgrade', function (req, res) { res.end(); });

echo.installHandlers(server, { prefix: '/echo' });
echo.installHandlers(server, { prefix: '/disabled_websocket_echo', websocket: false });
echo.installHandlers(server, { prefix: '/cookie_needed_echo', jsessionid: true });
closer.installHandlers(server, { prefix: '/close' });

server.listen(PORT, HOST, function () {
  const a = server.address();
  console.log(' [*] sockjs-node ' + require('sockjs/package.json').version + ' listening on ' + a.address + ':' + a.port);
});
