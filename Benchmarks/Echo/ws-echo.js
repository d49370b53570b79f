// Echo server for the WebSocket speed comparison: Debian's node-ws, no compression.
//   NODE_PATH=/usr/share/nodejs node ws-echo.js PORT
// Listens on 127.0.0.1:PORT; every message comes back with the same type (text or binary).
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 8081);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`ws echo listening on ws://127.0.0.1:${wss.address().port}/`));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
