// Replaces the suites' test-suite/node-imports.js (which imports node-fetch, ws, chai and chai-string from
// npm) when scripts/protocol-suites exports a suite. Shared by the Engine.IO and Socket.IO suites.
//  - fetch: Node 20's built-in fetch (undici) instead of node-fetch.
//  - WebSocket: Debian's node-ws wrapped so that events are delivered one per macrotask, like a browser.
//  - chai: the small local subset in chai-subset.mjs (Debian has no node-chai).
import { createRequire } from "node:module";
import chai from "./chai-subset.mjs";

const require = createRequire(import.meta.url);
const { WebSocket } = require("./browser-like-websocket.cjs");

if (typeof globalThis.fetch !== "function") {
  throw new Error("this runner needs a Node.js with a global fetch (Node 18+)");
}
globalThis.WebSocket = WebSocket;
globalThis.chai = chai;
