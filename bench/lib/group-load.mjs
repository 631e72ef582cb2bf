// Closed-loop HTTP/1.1 load for `npm run bench -- groups`, from the bench process itself: `gets` + `posts` loops
// (keep-alive, one connection each) until a deadline, every request recorded with its start (ms since the epoch),
// duration, method and status (0: the connection failed); and a burst of `n` requests at once.
import http from 'node:http';

const REQUEST_TIMEOUT_MS = 10_000;

function one(agent, port, method, path, body) {
  const t0 = Date.now();
  const p0 = performance.now();
  return new Promise((resolve) => {
    const done = (status, text = '') => resolve({ t0, ms: performance.now() - p0, method, status, text });
    const req = http.request(
      { host: '127.0.0.1', port, method, path, agent, headers: body ? { 'content-length': String(body.length) } : {} },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => done(res.statusCode ?? 0, text));
        res.on('error', () => done(0));
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('timeout')));
    req.on('error', () => done(0));
    req.end(body);
  });
}

/** `gets` GET loops and `posts` POST loops until `ms` pass: every request's record. */
export async function closedLoop(port, ms, { gets, posts = 0, tag }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: gets + posts });
  const end = Date.now() + ms;
  const out = [];
  let i = 0;
  const loop = async (method) => {
    while (Date.now() < end) {
      const n = i++;
      out.push(await one(agent, port, method, `/g/${tag}?i=${n}`, method === 'POST' ? 'x' : null));
    }
  };
  await Promise.all([
    ...Array.from({ length: gets }, () => loop('GET')),
    ...Array.from({ length: posts }, () => loop('POST')),
  ]);
  agent.destroy();
  return out;
}

/** `n` GETs of `path` at once, each on a connection of its own. */
export async function burst(port, n, path) {
  const agent = new http.Agent({ keepAlive: false, maxSockets: n });
  const out = await Promise.all(Array.from({ length: n }, () => one(agent, port, 'GET', path, null)));
  agent.destroy();
  return out;
}
