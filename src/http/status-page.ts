/**
 * The status page of the admin listener (`/`): plain HTML, rendered on the server for
 * the first paint (the figures are there without JavaScript), then re-rendered every 2 s
 * from /status.json by a few lines of inline script. Both renderings are one function,
 * `renderStatus`, sent to the browser as its own source text: it is self-contained
 * (no imports, no names from this module) for that reason. No framework, no build step.
 */
import { createHash } from 'node:crypto';
import type { StatusSnapshot } from './status.js';

/**
 * The body of the page for one snapshot. Everything from the snapshot is escaped:
 * repository names and error messages come from clients and upstreams.
 */
export function renderStatus(s: StatusSnapshot): string {
  const esc = (v: unknown): string =>
    String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
  const bytes = (n: number): string => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
  };
  const sized = (id: string, n: number): string => `<span id="${id}" data-bytes="${esc(n)}">${esc(bytes(n))}</span>`;
  const ratio = (id: string, r: number | null): string => `<span id="${id}" data-ratio="${r === null ? '' : esc(r)}">${r === null ? '–' : esc((r * 100).toFixed(1)) + '%'}</span>`;
  // A progress element, not a styled div: the page's CSP admits no style attributes.
  const bar = (part: number, whole: number | undefined): string => (whole ? `<progress value="${esc(Math.min(part, whole))}" max="${esc(whole)}"></progress>` : '');
  const count = (n: number, one: string, many: string): string => `${esc(n)} ${n === 1 ? one : many}`;
  const time = (iso: string): string => esc(iso.slice(11, 19));
  const table = (head: string[], rows: string[], empty: string): string =>
    rows.length === 0 ? `<p class="none">${esc(empty)}</p>` : `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.join('')}</table>`;
  const row = (cells: string[]): string => `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;

  const c = s.cache;
  const w = s.hits.window;
  const tiles = [
    `<div class="tile"><h2>Cache</h2><p class="big">${sized('cache-size', c.sizeBytes)}</p><p>of ${sized('cache-max', c.maxBytes)} · <span id="cache-blobs">${count(c.blobs, 'blob', 'blobs')}</span>${c.writable ? '' : ' · <b class="down">not writable</b>'}</p>${bar(c.sizeBytes, c.maxBytes)}</div>`,
    `<div class="tile"><h2>Blob hit ratio</h2><p class="big">${ratio('hit-ratio', s.hits.sinceStart.ratio)}</p><p>${count(s.hits.sinceStart.hits, 'hit', 'hits')}, ${count(s.hits.sinceStart.misses, 'miss', 'misses')} since start · last ${esc(w.seconds)} s: ${ratio('hit-ratio-window', w.ratio)}</p></div>`,
    `<div class="tile"><h2>Bytes saved</h2><p class="big">${sized('bytes-saved', s.bytes.fromCache)}</p><p>served from cache · ${sized('bytes-fill', s.bytes.fromFill)} during fills · ${sized('bytes-upstream', s.bytes.fromUpstream)} passed through</p></div>`,
    `<div class="tile"><h2>Fills in flight</h2><p class="big" id="fills-count">${esc(s.fills.length)}</p><p>${sized('upstream-received', s.bytes.upstreamReceived)} received for fills since start</p></div>`,
  ];
  const upstreams = s.origins.flatMap((o) =>
    o.instances.map((i) =>
      row([
        esc(o.host || '(default)'),
        `<span class="url">${esc(i.url)}</span>${i.backup ? ' <small>backup</small>' : ''}`,
        `<b class="${i.healthy ? 'up' : 'down'}" data-health="${i.healthy ? 'up' : 'down'}">${i.healthy ? 'up' : 'down'}</b>`,
        esc(i.probeHealthy === null ? 'not probed' : i.probeHealthy ? 'answers' : 'fails'),
        esc(i.fails),
        esc(i.active),
        i.lastFailure ? `${time(i.lastFailure.at)} ${esc(i.lastFailure.reason)}` : '',
      ]),
    ),
  );
  const fills = s.fills.map((f) =>
    row([
      `<span class="digest" title="${esc(f.digest)}">${esc(f.digest.slice(0, 19))}…</span>`,
      `${esc(bytes(f.receivedBytes))}${f.size === undefined ? '' : ` of ${esc(bytes(f.size))}`}${bar(f.receivedBytes, f.size)}`,
      esc(Math.round((Date.parse(s.now) - Date.parse(f.startedAt)) / 1000)) + ' s',
    ]),
  );
  const errors = s.errors.map((e) =>
    row([time(e.at), esc(e.route), esc(e.status || ''), `<code>${esc(e.code)}</code>`, esc(e.message), esc(e.repository), `<small>${esc(e.requestId)}</small>`]),
  );
  const repos = s.repositories.map((r) => row([`<span class="repo">${esc(r.name)}</span>`, esc(r.requests), esc(bytes(r.bytes))]));
  return [
    `<p class="meta">up ${esc(s.uptimeSeconds)} s since ${esc(s.startedAt)} · <span id="updated">${esc(s.now)}</span></p>`,
    `<section class="tiles">${tiles.join('')}</section>`,
    `<h2>Upstream instances</h2>${table(['origin', 'instance', 'health', 'probe', 'fails', 'active', 'last failure'], upstreams, 'no upstream instances')}`,
    `<h2>Fills in flight</h2>${table(['digest', 'received', 'for'], fills, 'no fill in flight')}`,
    `<h2>Recent errors</h2>${table(['time', 'route', 'status', 'code', 'message', 'repository', 'request id'], errors, 'no errors since start')}`,
    `<h2>Top repositories</h2>${table(['repository', 'requests', 'bytes'], repos, 'no repository requested yet')}`,
  ].join('\n');
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2430; background: #f6f7f9; }
h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.meta { color: #667; margin: 0 0 1rem; } body.stale .meta::after { content: ' · not updating'; color: #b42318; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: .8rem; }
.tile { background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: .7rem .9rem; }
.tile h2 { margin: 0; font-size: .85rem; color: #556; font-weight: 600; } .tile p { margin: .2rem 0; }
.big { font-size: 1.7rem; font-weight: 600; }
progress { display: block; width: 100%; height: 6px; margin-top: .3rem; accent-color: #2e90fa; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #dde1e7; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #eef0f3; vertical-align: top; } th { font-weight: 600; color: #556; background: #f0f2f5; }
.up { color: #067647; } .down { color: #b42318; } .none { color: #889; } code, .digest, .url { font-family: ui-monospace, monospace; font-size: .9em; }
`;

const SCRIPT = `
const renderStatus = ${renderStatus.toString()};
const poll = async () => {
  try {
    const res = await fetch('status.json', { cache: 'no-store' });
    if (!res.ok) throw new Error(String(res.status));
    document.getElementById('status').innerHTML = renderStatus(await res.json());
    document.body.className = 'live';
  } catch {
    document.body.className = 'stale';
  }
  setTimeout(poll, 2000);
};
setTimeout(poll, 2000);
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only the page's own style and script run, and it talks only to this listener: an escaping slip cannot become script. */
export const STATUS_PAGE_CSP = `default-src 'none'; connect-src 'self'; style-src ${hash(STYLE)}; script-src ${hash(SCRIPT)}; base-uri 'none'; form-action 'none'`;

export function statusPage(s: StatusSnapshot): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>registry-edge status</title><style>${STYLE}</style></head>
<body><h1>registry-edge</h1>
<main id="status">${renderStatus(s)}</main>
<script>${SCRIPT}</script></body></html>
`;
}
