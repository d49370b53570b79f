'use strict';
// A WebSocket for the official protocol suites that dispatches events the way a browser does: one event
// per macrotask. Debian's node-ws 8.11 emits every frame found in one TCP read synchronously, one after
// the other, so a test that does `await waitFor(socket, "message")` and then registers its next listener
// misses frames the server sent back-to-back (e.g. the Socket.IO CONNECT reply followed by the "auth"
// event, or the "open" event followed by the Engine.IO handshake). Here "open", "message", "error" and
// "close" are queued in arrival order and each is emitted on its own setImmediate, so the promise
// continuations of one event (microtasks) run before the next event is delivered. An event that arrives
// alone (nothing queued, none delivered yet in this macrotask) is delivered at once, as the task a
// browser would run for it; only the ones behind it in the same read wait for a macrotask each.
function loadWs() {
  const candidates = ['ws', '/usr/share/nodejs/ws', '/usr/lib/nodejs/ws'];
  for (const name of candidates) {
    try {
      return require(name);
    } catch (err) {
      if (err.code !== 'MODULE_NOT_FOUND') throw err;
    }
  }
  throw new Error('cannot load the ws module (apt-get install node-ws)');
}

const ws = loadWs();
const QUEUED = new Set(['open', 'message', 'error', 'close']);

class BrowserLikeWebSocket extends ws.WebSocket {
  emit(event, ...args) {
    if (!QUEUED.has(event)) return super.emit(event, ...args);
    if (!this._sockwayQueue) this._sockwayQueue = [];
    const listened = this.listenerCount(event) > 0 || event !== 'error';
    if (this._sockwayQueue.length === 0 && !this._sockwayBusy) {
      this._sockwayBusy = true;
      setImmediate(() => {
        this._sockwayBusy = false;
        if (this._sockwayQueue.length > 0) this._sockwayScheduleNext();
      });
      super.emit(event, ...args);
      return listened;
    }
    this._sockwayQueue.push([event, args]);
    if (this._sockwayQueue.length === 1 && !this._sockwayBusy) this._sockwayScheduleNext();
    return listened;
  }

  _sockwayScheduleNext() {
    setImmediate(() => {
      const [event, args] = this._sockwayQueue[0];
      try {
        super.emit(event, ...args);
      } finally {
        this._sockwayQueue.shift();
        if (this._sockwayQueue.length > 0) this._sockwayScheduleNext();
      }
    });
  }
}

// SOCKWAY_SUITE_RAW_WS=1 hands the suite node-ws unchanged (for comparing; expect spurious failures).
const raw = process.env.SOCKWAY_SUITE_RAW_WS === '1';
module.exports = { WebSocket: raw ? ws.WebSocket : BrowserLikeWebSocket, ws };
