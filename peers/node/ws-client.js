'use strict';
// node-ws-client: a closed-loop WebSocket round-trip load client on the `ws` package, the
// classic asyncio-benchmarker design in Node, for cross-checking echo-client. N async virtual
// clients each connect, do R round trips (send a unique message, await its echo, check it
// byte for byte, record the time), close, and are replaced at once. Prints one JSON line.
//
// Semantics follow echo-client so the two can be compared: everything that completes (or
// fails) after the warmup and before the deadline is counted; at the deadline every
// connection is dropped and round trips still in flight are neither counted nor errors.
// Messages are echo-client's: a filler of printable ASCII whose first 16 bytes are the round
// trip's id in hex (its low digits when shorter), so a stale or corrupted echo never matches.

const net = require('node:net');
const { parseArgs } = require('node:util');
const { performance } = require('node:perf_hooks');
const WebSocket = require('ws');
const { fail, positiveInt } = require('./common');

const USAGE = `Usage: node ws-client.js URL [-c N] [-r R] [-d SECONDS] [-s BYTES] [--warmup SECONDS]

Closed-loop WebSocket round-trip load client (ws). Prints one JSON line on stdout:
{"tool", "round_trips", "seconds", "round_trips_per_s", "errors", "p50_us", "p99_us", "max_us", ...}

  URL                     ws://HOST:PORT/PATH (loopback only unless --allow-remote)
  -c, --connections N     virtual clients, each with one connection open     [64]
  -r, --roundtrips R      round trips per connection before it is closed and
                          replaced; 0 keeps it for the whole run              [0]
  -d, --duration SECONDS  measured window; at its end every connection is
                          dropped and round trips in flight are not counted  [10]
  -s, --size BYTES        message size                                        [32]
      --warmup SECONDS    load before the window; its samples are discarded   [1]
      --ws-mode MODE      binary or text                                      [binary]
      --timeout SECONDS   longest wait for an echo or a connection; then it
                          is an error and the connection is replaced          [10]
      --allow-remote      allow a target outside loopback

Exit status: 0 after the report; 130 on SIGINT/SIGTERM, after a report of what ran; 2 for
bad flags.
`;

const FILLER = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ID_DIGITS = 16;

function seconds(name, text, allowZero) {
  const match = /^(\d+(?:\.\d+)?)s?$/.exec(text);
  const value = match ? Number(match[1]) : NaN;
  if (!(value > 0 || (allowZero && value === 0)))
    fail(`${name} ${JSON.stringify(text)} is not a number of seconds`, 2);
  return value;
}

function isLoopback(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  return host === '::1';
}

function config() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        connections: { type: 'string', short: 'c', default: '64' },
        roundtrips: { type: 'string', short: 'r', default: '0' },
        duration: { type: 'string', short: 'd', default: '10' },
        size: { type: 'string', short: 's', default: '32' },
        warmup: { type: 'string', default: '1' },
        'ws-mode': { type: 'string', default: 'binary' },
        timeout: { type: 'string', default: '10' },
        'allow-remote': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    fail(`${err.message} (see --help)`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  if (positionals.length !== 1)
    fail('expected exactly one URL, e.g. ws://127.0.0.1:8080/ws (see --help)', 2);
  let url;
  try {
    url = new URL(positionals[0]);
  } catch {
    fail(`${JSON.stringify(positionals[0])} is not a URL, e.g. ws://127.0.0.1:8080/ws`, 2);
  }
  if (url.protocol !== 'ws:') fail(`${url.href}: only ws:// URLs are supported`, 2);
  if (!values['allow-remote'] && !isLoopback(url.hostname)) {
    const hint = 'pass --allow-remote for a server you may load-test';
    fail(`${url.hostname} is not a loopback address; ${hint}`, 2);
  }
  if (values['ws-mode'] !== 'binary' && values['ws-mode'] !== 'text')
    fail('--ws-mode is binary or text', 2);
  const roundtrips = values.roundtrips === '0' ? 0 : positiveInt('--roundtrips', values.roundtrips);
  return {
    url: url.href,
    connections: positiveInt('--connections', values.connections),
    roundtrips,
    duration: seconds('--duration', values.duration, false),
    warmup: seconds('--warmup', values.warmup, true),
    size: positiveInt('--size', values.size),
    binary: values['ws-mode'] === 'binary',
    timeoutMs: seconds('--timeout', values.timeout, false) * 1000,
  };
}

/** Writes `id` in lowercase hex over the first min(16, length) bytes. */
function stamp(buf, id) {
  const digits = Math.min(buf.length, ID_DIGITS);
  buf.write(
    id
      .toString(16)
      .padStart(ID_DIGITS, '0')
      .slice(ID_DIGITS - digits),
    0,
    digits,
    'latin1',
  );
}

function mismatch(sent, echo) {
  let at = 0;
  while (at < sent.length && at < echo.length && sent[at] === echo[at]) at++;
  if (at === sent.length || at === echo.length)
    return `echo has ${echo.length} bytes, the message had ${sent.length}`;
  const sizes = `${sent.length} bytes sent, ${echo.length} echoed`;
  return `echo differs from the message at byte ${at} (${sizes})`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One open connection, its events turned into one awaitable reply at a time. */
class Link {
  static open(url, timeoutMs) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        resolve(new Link(ws));
      });
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.waiter = null;
    this.error = null;
    /** When the round trip in flight was sent (0: none), for the timeout sweep. */
    this.sentAt = 0;
    ws.on('message', (data, isBinary) => {
      const waiter = this.waiter;
      this.waiter = null;
      if (waiter) waiter.resolve({ data, isBinary });
      else this.fail(new Error('a message arrived that answered nothing (an extra or stale echo)'));
    });
    ws.on('close', (code) =>
      this.fail(new Error(`the server closed the connection (code ${code})`)),
    );
    ws.on('error', (err) => this.fail(err));
  }

  reply() {
    return new Promise((resolve, reject) => {
      if (this.error) reject(this.error);
      else this.waiter = { resolve, reject };
    });
  }

  fail(err) {
    this.error ??= err;
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) waiter.reject(this.error);
  }

  /** A close handshake (bounded by the timeout) after a clean session, else a plain drop. */
  close(clean, timeoutMs) {
    if (!clean || this.ws.readyState !== WebSocket.OPEN) {
      this.ws.terminate();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, timeoutMs);
      this.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close(1000);
    });
  }
}

function main() {
  const cfg = config();
  const template = Buffer.alloc(cfg.size);
  for (let i = 0; i < cfg.size; i++) template[i] = FILLER.charCodeAt(i % FILLER.length);

  const start = performance.now();
  const warmupEnd = start + cfg.warmup * 1000;
  const deadline = warmupEnd + cfg.duration * 1000;
  const samples = []; // round-trip times in ms, measured window only
  const links = new Set();
  let errors = 0;
  let reported = 0;
  let nextId = 0;
  let stopped = false;

  function error(err) {
    const now = performance.now();
    if (now >= warmupEnd && now <= deadline) errors++;
    if (reported++ < 3) process.stderr.write(`ws-client: ${err.message}\n`);
  }

  async function virtualClient() {
    const payload = Buffer.from(template);
    let backoff = 1;
    while (!stopped) {
      let link;
      try {
        link = await Link.open(cfg.url, cfg.timeoutMs);
      } catch (err) {
        if (stopped) return;
        error(err);
        // Do not spin against a server that refuses: 1 ms, doubling up to 100 ms, as echo-client.
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 100);
        continue;
      }
      if (stopped) return link.ws.terminate();
      backoff = 1;
      links.add(link);
      let clean = true;
      for (let n = 0; !stopped && (cfg.roundtrips === 0 || n < cfg.roundtrips); n++) {
        stamp(payload, nextId++);
        const sent = performance.now();
        link.sentAt = sent;
        let reply;
        try {
          link.ws.send(payload, { binary: cfg.binary });
          reply = await link.reply();
        } catch (err) {
          if (!stopped) error(err);
          clean = false;
          break;
        }
        const done = performance.now();
        link.sentAt = 0;
        if (stopped) break;
        if (reply.isBinary !== cfg.binary) {
          const kind = (binary) => (binary ? 'binary' : 'text');
          error(new Error(`a ${kind(cfg.binary)} message was echoed as ${kind(reply.isBinary)}`));
          clean = false;
          break;
        }
        if (!reply.data.equals(payload)) {
          error(new Error(mismatch(payload, reply.data)));
          clean = false;
          break;
        }
        if (done >= warmupEnd && done <= deadline) samples.push(done - sent);
      }
      links.delete(link);
      if (stopped) return link.ws.terminate();
      await link.close(clean, cfg.timeoutMs);
    }
  }

  // One sweep for every connection's echo timeout, rather than a timer per round trip.
  const sweep = setInterval(
    () => {
      const now = performance.now();
      for (const link of links) {
        if (link.sentAt && now - link.sentAt > cfg.timeoutMs) {
          link.fail(new Error(`no echo within ${cfg.timeoutMs / 1000} s`));
        }
      }
    },
    Math.min(100, cfg.timeoutMs),
  );

  // At the deadline (exit 0), or on SIGINT/SIGTERM with what ran so far (exit 130).
  function finish(exitCode) {
    if (stopped) return;
    // Freeze the numbers first: nothing that completes after this line counts.
    stopped = true;
    const measured = Math.max(0, Math.min(performance.now(), deadline) - warmupEnd) / 1000;
    clearInterval(sweep);
    // Percentiles by nearest rank on the sorted samples: the smallest sample with at least p%
    // of all samples at or below it (no interpolation), index ceil(p * n) - 1.
    const sorted = Float64Array.from(samples).sort();
    const rank = (p) =>
      sorted.length ? round3(sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] * 1000) : null;
    const report = {
      tool: 'node-ws-client',
      round_trips: sorted.length,
      seconds: round3(measured),
      round_trips_per_s: round3(measured > 0 ? sorted.length / measured : 0),
      errors,
      p50_us: rank(0.5),
      p99_us: rank(0.99),
      max_us: sorted.length ? round3(sorted[sorted.length - 1] * 1000) : null,
      library: `ws ${require('ws/package.json').version}`,
      runtime: `node ${process.version}`,
      url: cfg.url,
      connections: cfg.connections,
      roundtrips: cfg.roundtrips,
      size: cfg.size,
      ws_mode: cfg.binary ? 'binary' : 'text',
      warmup_s: cfg.warmup,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    // Dropping the connections abandons whatever is in flight.
    for (const link of links) link.ws.terminate();
    process.exit(exitCode);
  }
  setTimeout(() => finish(0), deadline - start);
  process.on('SIGINT', () => finish(130));
  process.on('SIGTERM', () => finish(130));

  for (let i = 0; i < cfg.connections; i++) virtualClient();
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

main();
