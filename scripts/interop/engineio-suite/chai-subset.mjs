// A small stand-in for the parts of chai 4 + chai-string that the official Engine.IO / Socket.IO protocol
// test suites use (Debian has no node-chai package): expect(x).to.eql / equal / startsWith /
// have.all.keys / be.a / be.oneOf / include, with `not`. Written for Sockway; not derived from chai.
import assert from "node:assert";

function typeName(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  const t = typeof value;
  if (t !== "object") return t;
  return Object.prototype.toString.call(value).slice(8, -1).toLowerCase();
}

function bytesOf(value) {
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

// Deep equality in the spirit of chai's `eql`: same type tag, then structural comparison.
export function deepEqual(a, b) {
  if (a === b) return a !== 0 || 1 / a === 1 / b;
  if (Number.isNaN(a) && Number.isNaN(b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const tagA = Object.prototype.toString.call(a);
  if (tagA !== Object.prototype.toString.call(b)) return false;
  const bytesA = bytesOf(a);
  if (bytesA) {
    const bytesB = bytesOf(b);
    if (bytesA.length !== bytesB.length) return false;
    for (let i = 0; i < bytesA.length; i++) if (bytesA[i] !== bytesB[i]) return false;
    return true;
  }
  if (a instanceof Date) return a.getTime() === b.getTime();
  if (Array.isArray(a)) {
    if (a.length !== b.length) return false;
    return a.every((item, i) => deepEqual(item, b[i]));
  }
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  if (keysA.length !== keysB.length) return false;
  return keysA.every((key) => Object.prototype.hasOwnProperty.call(b, key) && deepEqual(a[key], b[key]));
}

function show(value) {
  const bytes = bytesOf(value);
  if (bytes) return `${typeName(value)}[${Array.from(bytes).join(", ")}]`;
  try {
    return typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

class Assertion {
  constructor(actual) {
    this.actual = actual;
    this.negated = false;
    for (const word of ["to", "be", "been", "is", "that", "which", "and", "has", "have", "with", "at", "of", "same", "deep", "all"]) {
      Object.defineProperty(this, word, { get: () => this });
    }
    Object.defineProperty(this, "not", { get: () => { this.negated = !this.negated; return this; } });
  }

  check(ok, message, expected, showDiff = true) {
    if (Boolean(ok) === this.negated) {
      throw new assert.AssertionError({
        message: (this.negated ? "expected NOT: " : "expected: ") + message,
        actual: this.actual,
        expected,
        operator: showDiff ? "deepStrictEqual" : "fail",
      });
    }
    return this;
  }

  eql(expected) {
    return this.check(deepEqual(this.actual, expected), `${show(this.actual)} to deeply equal ${show(expected)}`, expected);
  }
  eqls(expected) { return this.eql(expected); }
  equal(expected) {
    return this.check(this.actual === expected, `${show(this.actual)} to equal ${show(expected)}`, expected);
  }
  equals(expected) { return this.equal(expected); }
  startsWith(prefix) {
    return this.check(typeof this.actual === "string" && this.actual.startsWith(prefix),
      `${show(this.actual)} to start with ${show(prefix)}`, prefix, false);
  }
  startWith(prefix) { return this.startsWith(prefix); }
  a(type) {
    return this.check(typeName(this.actual) === String(type).toLowerCase(),
      `${show(this.actual)} to be a ${type} (is ${typeName(this.actual)})`, type, false);
  }
  an(type) { return this.a(type); }
  oneOf(list) {
    return this.check(list.some((item) => item === this.actual), `${show(this.actual)} to be one of ${show(list)}`, list, false);
  }
  include(item) {
    const actual = this.actual;
    const ok = typeof actual === "string" ? actual.includes(item)
      : Array.isArray(actual) ? actual.some((x) => deepEqual(x, item))
      : actual && typeof actual === "object" ? Object.keys(item).every((k) => deepEqual(actual[k], item[k])) : false;
    return this.check(ok, `${show(actual)} to include ${show(item)}`, item, false);
  }
  keys(...wanted) {
    if (wanted.length === 1 && Array.isArray(wanted[0])) wanted = wanted[0];
    const have = this.actual && typeof this.actual === "object" ? Object.keys(this.actual) : [];
    const ok = have.length === wanted.length && wanted.every((k) => have.includes(k));
    return this.check(ok, `keys ${show(have.slice().sort())} to be exactly ${show(wanted.slice().sort())}`, wanted);
  }
  get ok() { return this.check(this.actual, `${show(this.actual)} to be truthy`, true, false); }
  get true() { return this.check(this.actual === true, `${show(this.actual)} to be true`, true, false); }
  get false() { return this.check(this.actual === false, `${show(this.actual)} to be false`, false, false); }
}

export function expect(actual) {
  return new Assertion(actual);
}

const chai = {
  expect,
  Assertion,
  // chai.use(plugin): the real plugins are not loaded; startsWith (chai-string) is built in above.
  use() { return chai; },
};

export default chai;
