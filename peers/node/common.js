'use strict';
// What every Node peer shares: flag parsing helpers, the listen address, the one ready line on
// stdout and graceful stop on SIGTERM/SIGINT. Behaviour follows the reference `echo-server`
// (README.md at the repository root), so the harness can start a peer exactly like one of ours.

const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const { parseArgs } = require('node:util');

/** Largest HTTP body or WebSocket message, as in the reference servers (16 MiB). */
const MAX_MESSAGE = 16 * 1024 * 1024;

/**
 * Listen backlog. The kernel default Node asks for (511) can overflow when hundreds of clients
 * connect at once, and each dropped SYN costs that client a 1 s retransmit that would be
 * reported as server latency; the reference servers ask for 4096 for the same reason.
 */
const BACKLOG = 4096;

/** Prints `Error: MESSAGE` on stderr and exits with `code` (2: bad flags, 1: runtime failure). */
function fail(message, code) {
  process.stderr.write(`Error: ${message}\n`);
  process.exit(code);
}

/** `HOST:PORT` or `[V6]:PORT` into `{ host, port }`; exits 2 when malformed. */
function parseAddr(text) {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    fail(
      `--addr ${JSON.stringify(text)} is not HOST:PORT (e.g. 127.0.0.1:0; port 0 picks a free one)`,
      2,
    );
  }
  return { host: match[1] ?? match[2], port };
}

/** A positive integer flag value; exits 2 otherwise. */
function positiveInt(name, text) {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1)
    fail(`${name} ${JSON.stringify(text)} is not a positive integer`, 2);
  return value;
}

/** The help lines of the TLS flags every server takes. */
const TLS_USAGE = `  --cert FILE            serve TLS (https://, wss://) with this PEM certificate chain
  --key FILE             the PEM private key of --cert (both or neither)
`;

/** Reads `--cert`/`--key` into `{ cert, key }` (Buffers), or null for plaintext; exits 2/1. */
function tlsFiles(certPath, keyPath) {
  if (certPath === undefined && keyPath === undefined) return null;
  if (certPath === undefined || keyPath === undefined)
    fail('--cert and --key go together: give both to serve TLS, or neither', 2);
  const read = (flag, path) => {
    try {
      return fs.readFileSync(path);
    } catch (err) {
      return fail(`cannot read ${flag} file ${path}: ${err.message}`, 1);
    }
  };
  return { cert: read('--cert', certPath), key: read('--key', keyPath) };
}

/**
 * The common server flags: `--addr HOST:PORT` (default 127.0.0.1:0), `--max-message BYTES`
 * (default 16 MiB) and `--cert FILE --key FILE` (TLS), plus a server's own `extra` options
 * (`parseArgs` syntax; their values come back in `values`). `usage` is printed for `--help`.
 */
function serverArgs(usage, extra = {}) {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        addr: { type: 'string', default: '127.0.0.1:0' },
        'max-message': { type: 'string', default: String(MAX_MESSAGE) },
        cert: { type: 'string' },
        key: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        ...extra,
      },
    });
  } catch (err) {
    fail(`${err.message} (see --help)`, 2);
  }
  if (parsed.values.help) {
    process.stdout.write(usage + TLS_USAGE);
    process.exit(0);
  }
  return {
    ...parseAddr(parsed.values.addr),
    maxMessage: positiveInt('--max-message', parsed.values['max-message']),
    tls: tlsFiles(parsed.values.cert, parsed.values.key),
    values: parsed.values,
  };
}

/**
 * An `http` server, or an `https` one when `options.tls` holds a certificate and key (ALPN
 * http/1.1, as the reference servers offer; Node accepts TLS 1.2 and 1.3 by default). A
 * certificate and key that do not fit together exit 1 with one error line.
 */
function createServer(options, handler) {
  if (!options.tls) return http.createServer({ noDelay: true }, handler);
  try {
    return https.createServer(
      { ...options.tls, noDelay: true, ALPNProtocols: ['http/1.1'] },
      handler,
    );
  } catch (err) {
    return fail(`the TLS certificate and key cannot be used: ${err.message}`, 1);
  }
}

/** `scheme://host:port/path` for a bound `server.address()`, with brackets around IPv6. */
function urlOf(scheme, address, path) {
  const host =
    address.family === 'IPv6' || address.family === 6 ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}${path}`;
}

/**
 * Listens, then prints the one ready line. Writes to a pipe are synchronous on Linux, so the
 * line is out before anything else can happen; a failure to bind exits 1.
 */
function listen(server, { host, port }, scheme, path) {
  server.once('error', (err) => fail(`could not listen on ${host}:${port}: ${err.message}`, 1));
  server.listen({ host, port, backlog: BACKLOG }, () => {
    process.stdout.write(`listening ${urlOf(scheme, server.address(), path)}\n`);
  });
}

/** Runs `stop` once on the first SIGTERM or SIGINT; a second signal exits at once. */
function onShutdown(stop) {
  let stopping = false;
  const handler = () => {
    if (stopping) process.exit(0);
    stopping = true;
    stop();
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

module.exports = {
  MAX_MESSAGE,
  BACKLOG,
  fail,
  parseAddr,
  positiveInt,
  serverArgs,
  createServer,
  urlOf,
  listen,
  onShutdown,
};
