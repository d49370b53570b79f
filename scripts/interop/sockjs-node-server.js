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
  // sockjs-node's own default unless RESPONSE_LIMIT says otherwise (the protocol suite uses 4096).
  response_limit: parseInt(process.env.RESPONSE_LIMIT || '131072', 10),
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

// Every message to every session in the room, the sender included (as Sockway's /chat does): the
// bench's push scenario.
const room = new Set();
const chat = sockjs.createServer(opts);
chat.on('connection', function (conn) {
  room.add(conn);
  conn.on('data', function (m) { for (const other of room) other.write(m); });
  conn.on('close', function () { room.delete(conn); });
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
chat.installHandlers(server, { prefix: '/chat' });

server.listen(PORT, HOST, function () {
  const a = server.address();
  console.log(' [*] sockjs-node ' + require('sockjs/package.json').version + ' listening on ' + a.address + ':' + a.port);
});
