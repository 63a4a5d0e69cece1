'use strict';
// node-http: the HTTP echo routes of the reference servers on Node's built-in `http` module,
// with no framework, as the JavaScript counterpart of the `hyper` server. One process, one
// event loop (pin it to a CPU for comparisons).

const { serverArgs, createServer, listen, onShutdown } = require('./common');

const USAGE = `Usage: node http-server.js [--addr HOST:PORT] [--max-message BYTES] [--cert FILE --key FILE]

HTTP echo server (Node http). POST /echo echoes the body with its Content-Type; GET / answers a
short text; POST /json re-serializes JSON (400 when invalid); GET /status/CODE answers CODE.
Prints "listening http://HOST:PORT/echo" (https:// with --cert) on stdout when ready;
SIGTERM/SIGINT stop it (exit 0).

  --addr HOST:PORT       where to listen; port 0 picks a free one  [127.0.0.1:0]
  --max-message BYTES    largest request body; 413 beyond          [16777216]
`;

const INDEX_BODY = 'echobench echo server: POST /echo echoes the body\n';
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const TEXT = 'text/plain; charset=utf-8';
// `fatal` rejects invalid UTF-8 (JSON must be UTF-8) instead of replacing it with U+FFFD, and
// `ignoreBOM` keeps a leading BOM so that JSON.parse refuses it, as serde_json does.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const options = serverArgs(USAGE);
const limit = options.maxMessage;

function send(res, status, headers, body) {
  headers['Content-Length'] = body ? body.length : 0;
  res.writeHead(status, headers);
  res.end(body);
}

function text(res, status, body) {
  send(res, status, { 'Content-Type': TEXT }, Buffer.from(body));
}

function tooLarge(res) {
  // The rest of the body is unread, so the connection cannot carry another request.
  send(
    res,
    413,
    { 'Content-Type': TEXT, Connection: 'close' },
    Buffer.from(`request body exceeds the limit of ${limit} bytes\n`),
  );
}

/** Calls `done(body)` with the whole body, or answers 413 once it passes the limit. */
function readBody(req, res, done) {
  if (Number(req.headers['content-length']) > limit) return tooLarge(res);
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    if (size > limit) return;
    size += chunk.length;
    if (size > limit) {
      chunks.length = 0;
      tooLarge(res);
    } else {
      chunks.push(chunk);
    }
  });
  req.on('end', () => {
    if (size <= limit) done(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
  });
}

function echo(req, res, body) {
  send(res, 200, { 'Content-Type': req.headers['content-type'] ?? DEFAULT_CONTENT_TYPE }, body);
}

function json(res, body) {
  let status = 200;
  let out;
  try {
    out = JSON.stringify(JSON.parse(UTF8.decode(body)));
  } catch (err) {
    // SyntaxError, TypeError (invalid UTF-8) or RangeError (nesting too deep to re-serialize).
    status = 400;
    out = JSON.stringify({ error: `invalid JSON: ${err.message}` });
  }
  send(res, status, { 'Content-Type': 'application/json' }, Buffer.from(out));
}

function status(res, code) {
  const value = /^[0-9]{1,5}$/.test(code) ? Number(code) : NaN;
  if (value >= 200 && value <= 599) return send(res, value, {}, null);
  text(res, 400, `\`${code}\` is not a status code between 200 and 599\n`);
}

function notAllowed(res, allow) {
  send(res, 405, { Allow: allow }, null);
}

function handle(req, res) {
  const path = req.url.split('?', 1)[0];
  const isGet = req.method === 'GET' || req.method === 'HEAD';
  const isPost = req.method === 'POST';
  if (path === '/') return isGet ? text(res, 200, INDEX_BODY) : notAllowed(res, 'GET,HEAD');
  if (path === '/echo' || path === '/json') {
    if (!isPost) return notAllowed(res, 'POST');
    return readBody(req, res, (body) =>
      path === '/echo' ? echo(req, res, body) : json(res, body),
    );
  }
  if (path.startsWith('/status/')) {
    const code = path.slice('/status/'.length);
    if (code !== '' && !code.includes('/'))
      return isGet ? status(res, code) : notAllowed(res, 'GET,HEAD');
  }
  send(res, 404, {}, null);
}

const server = createServer(options, handle);
// A body already known to be too large is refused before the client sends it (no 100 Continue).
server.on('checkContinue', (req, res) => {
  if (!(Number(req.headers['content-length']) > limit)) res.writeContinue();
  handle(req, res);
});

listen(server, options, options.tls ? 'https' : 'http', '/echo');

onShutdown(() => {
  // close() refuses new connections and closes idle keep-alive ones; requests in flight are
  // answered. Whatever is still open after 3 s is cut, as in the reference servers.
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 3000).unref();
});
