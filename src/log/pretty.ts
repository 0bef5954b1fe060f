/**
 * `serve --pretty`: pino's JSON lines as a person reads them, one line each:
 * `12:03:04.120 INFO  request GET /v2/library/alpine/blobs/sha256:… 200 1.2ms  cache=hit requestId=…`.
 * The time, level and message lead; the access line's method, path, status and duration
 * follow; every other field is `key=value` (strings with spaces or quotes as JSON). An
 * error's stack goes on the lines after, indented. What is not a JSON line passes as it is.
 */

const LEVELS: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLOURS: Readonly<Record<number, string>> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Shown in the lead, or not at all (the same for every line of the process). */
const LEAD = new Set(['time', 'level', 'msg', 'method', 'path', 'status', 'durationMs', 'service', 'pid', 'hostname', 'err']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

function clock(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : undefined;
  return date && !Number.isNaN(date.getTime()) ? date.toISOString().slice(11, 23) : '--:--:--.---';
}

/** One JSON log line as text; undefined when it is not one. */
export function prettyLine(line: string, colour = false): string | undefined {
  let entry: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    entry = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const level = typeof entry.level === 'number' ? entry.level : 30;
  const name = (LEVELS[level] ?? String(level)).padEnd(5);
  const lead = [clock(entry.time), colour ? `\x1b[${COLOURS[level] ?? '0'}m${name}\x1b[0m` : name, String(entry.msg ?? '')];
  if (entry.method !== undefined) lead.push(String(entry.method), String(entry.path ?? ''));
  if (entry.status !== undefined) lead.push(String(entry.status));
  if (typeof entry.durationMs === 'number') lead.push(`${entry.durationMs}ms`);
  const fields = Object.entries(entry).filter(([k, v]) => !LEAD.has(k) && v !== undefined).map(([k, v]) => `${k}=${value(v)}`);
  let text = lead.join(' ') + (fields.length > 0 ? '  ' + fields.join(' ') : '');
  const err = entry.err as { type?: unknown; message?: unknown; stack?: unknown } | undefined;
  if (err && typeof err === 'object') {
    text += `  err=${value(err.message ?? err.type ?? '')}`;
    if (typeof err.stack === 'string') text += '\n' + err.stack.split('\n').map((l) => `    ${l}`).join('\n');
  }
  return text;
}

/** A pino destination that writes each line (pino writes one per call) pretty to `out`, synchronously as stdout takes it. */
export function prettyDestination(out: { write(text: string): unknown }, colour: boolean): { write(line: string): void } {
  return {
    write(line) {
      const text = line.endsWith('\n') ? line.slice(0, -1) : line;
      out.write((prettyLine(text, colour) ?? text) + '\n');
    },
  };
}
