// Listeners for scripts/interop/cluster_recovery.py: `clients` official Socket.IO clients (long-polling and
// WebSocket, alternately) connect to `front` (a load balancer before the cluster), join `room` once, and
// record every room message, the node behind each connection (the Engine.IO sid starts with it) and
// whether each reconnection was recovered. They never join again: a client whose state was not recovered
// is out of the room and misses what follows, which the harness counts as lost.
"use strict";
const params = new URLSearchParams(location.search);
const front = params.get("front");
const count = Number(params.get("clients"));
const room = params.get("room");

function post(path, body) {
  return fetch(path, { method: "POST", body: JSON.stringify(body) });
}

const listeners = [];
for (let index = 0; index < count; index++) {
  const transport = index % 2 === 0 ? "polling" : "websocket";
  const socket = io(front, {
    transports: [transport],
    reconnectionDelay: 200,
    reconnectionDelayMax: 1000,
    timeout: 5000,
  });
  const state = { index, transport, received: [], connects: [], joined: false };
  socket.on("connect", () => {
    const node = (socket.io.engine.id || "").split("~")[0];
    state.connects.push({ node, id: socket.id, recovered: socket.recovered === true });
    if (state.joined) return;
    socket.emit("join", room, () => {
      state.joined = true;
      post("/ready", { index, node });
    });
  });
  // (text, offset): the offset is Socket.IO's, appended by the server for recovery.
  socket.on("room-message", (text) => state.received.push(text));
  listeners.push({ socket, state });
}

async function finishWhenTold() {
  for (;;) {
    const command = await fetch("/command").then((response) => response.text()).catch(() => "");
    if (command === "finish") break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  for (const { socket, state } of listeners) {
    await post("/result", state);
    socket.disconnect();
  }
}
finishWhenTold();
