'use strict';
// Makes Debian's Node module folders (/usr/share/nodejs, /usr/lib/nodejs) resolvable even without
// NODE_PATH, so that the interop scripts find node-sockjs-client, node-ws and friends. Require it first.
const path = require('path');
const dirs = ['/usr/share/nodejs', '/usr/lib/nodejs'];
const current = (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean);
const missing = dirs.filter((dir) => !current.includes(dir));
if (missing.length) {
  process.env.NODE_PATH = current.concat(missing).join(path.delimiter);
  require('module').Module._initPaths();
}
