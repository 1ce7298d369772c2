// The stand-in CrowdSec Local API of npm run bench:firewall (bench/firewall/stack.ts runs it in MX):
// node lapi.cjs PORT DESIRED.json KEY answers GET /v1/decisions/stream for the bouncer KEY on 127.0.0.1:PORT.
// The decisions are the CIDRs in DESIRED.json; deltas against what it last served.
const http = require('node:http');
const fs = require('node:fs');
const [port, file, key] = process.argv.slice(2);
const ids = new Map();
let nextId = 1;
let served = new Set();
const decision = (cidr) => ({ id: ids.get(cidr), duration: '167h59m59s', origin: 'bench', scenario: 'smtpguard/bench', scope: 'Ip', type: 'ban', value: cidr.replace(/\/32$/, '') });
http.createServer((req, res) => {
  if (!req.url.startsWith('/v1/decisions/stream') || req.headers['x-api-key'] !== key) {
    res.writeHead(req.url.startsWith('/v1/decisions/stream') ? 403 : 404, { 'Content-Type': 'application/json' });
    res.end('{"message":"no"}');
    return;
  }
  const desired = new Set(JSON.parse(fs.readFileSync(file, 'utf8')));
  for (const c of desired) if (!ids.has(c)) ids.set(c, nextId++);
  const startup = req.url.includes('startup=true');
  const added = [...desired].filter((c) => startup || !served.has(c)).map(decision);
  const deleted = startup ? [] : [...served].filter((c) => !desired.has(c)).map(decision);
  served = desired;
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ new: added.length > 0 ? added : null, deleted: deleted.length > 0 ? deleted : null }));
}).listen(Number(port), '127.0.0.1', () => console.log('listening'));
