'use strict';
// mocha reporter for scripts/protocol-suites: Debian's spec reporter plus one closing line
//   sockway-score: P passing, F failing, T tests
// counted per test (fullTitle), so that a test which times out and later settles ("done() called
// multiple times") counts once, as failed. Also puts back the ✔ / ✖ symbols that Debian's mocha 10.1
// loses (it require()s log-symbols 5, an ES module, and gets { default: ... }).
const resolveMocha = (file) => require.resolve(`mocha/lib/reporters/${file}`, {
  paths: [...module.paths, '/usr/share/nodejs', '/usr/lib/nodejs'],
});
const Base = require(resolveMocha('base.js'));
const Spec = require(resolveMocha('spec.js'));

if (Base.symbols && Base.symbols.ok === undefined) {
  Object.assign(Base.symbols, { ok: '✔', err: '✖', dot: '․', comma: ',', bang: '!' });
}

class ScoreReporter extends Spec {
  constructor(runner, options) {
    super(runner, options);
    const passed = new Set();
    const failed = new Set();
    runner.on('pass', (test) => passed.add(test.fullTitle()));
    runner.on('fail', (test) => failed.add(test.fullTitle()));
    runner.once('end', () => {
      for (const title of failed) passed.delete(title);
      process.stdout.write(`sockway-score: ${passed.size} passing, ${failed.size} failing, ${runner.total} tests\n`);
    });
  }
}

module.exports = ScoreReporter;
