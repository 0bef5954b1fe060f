/**
 * How `registry-edge prefetch` shows a prefetch's progress: on a terminal, a bar per
 * blob redrawn in place (ANSI cursor movement, no dependency); otherwise one plain line
 * per manifest and per finished blob, for logs and CI. Both end with the summary.
 */
import type { ProgressEvent, Tally } from '../prewarm/progress.js';

export interface Renderer {
  show(event: ProgressEvent): void;
}

/** What the renderers write to (process.stdout, or a test's stream). */
export interface Output {
  write(text: string): unknown;
  readonly columns?: number | undefined;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function humanBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

const short = (digest: string): string => digest.replace(/^(sha\d+:)([0-9a-f]{12})[0-9a-f]*$/, '$1$2');

function manifestLine(e: Extract<ProgressEvent, { event: 'manifest' }>): string {
  const total = e.blobs.reduce((n, b) => n + b.size, 0);
  const platforms = e.platforms.length ? `, platforms ${e.platforms.join(', ')}` : '';
  return `${e.image}: ${short(e.digest)}, ${e.blobs.length} blobs, ${humanBytes(total)}${platforms}`;
}

export function summaryLine(t: Tally): string {
  const images = t.imagesFailed ? `, ${t.imagesFailed} image${t.imagesFailed === 1 ? '' : 's'} not resolved` : '';
  return `summary: ${t.blobs} blobs, ${t.fetched} fetched (${humanBytes(t.fetchedBytes)}), ${t.cached} already cached, ${t.failed} failed${images}\n`;
}

export class PlainRenderer implements Renderer {
  private readonly out: Output;

  constructor(out: Output) {
    this.out = out;
  }

  show(e: ProgressEvent): void {
    const line = this.line(e);
    if (line !== undefined) this.out.write(line);
  }

  private line(e: ProgressEvent): string | undefined {
    switch (e.event) {
      case 'manifest':
        return `${manifestLine(e)}\n`;
      case 'image_failed':
        return `${e.image}: failed: ${e.error}\n`;
      case 'summary':
        return summaryLine(e);
      case 'blob':
        if (e.state === 'done') return `${e.image}: ${short(e.digest)} ${humanBytes(e.size)} ${e.cached ? 'already cached' : 'fetched'}\n`;
        if (e.state === 'failed') return `${e.image}: ${short(e.digest)} failed: ${e.error}\n`;
        return undefined;
    }
  }
}

interface Bar {
  readonly digest: string;
  readonly size: number;
  bytes: number;
  state: 'waiting' | 'fetching' | 'fetched' | 'cached' | 'failed';
  error?: string;
}

const BAR_WIDTH = 24;
/** A bar is redrawn at most this often while bytes flow; a blob starting or ending redraws at once. */
const REDRAW_MS = 80;

export class TtyRenderer implements Renderer {
  private readonly out: Output;
  private readonly now: () => number;
  /** The bars of the image being fetched: the only lines redrawn. */
  private bars: Bar[] = [];
  private drawn = 0;
  private lastDraw = 0;

  constructor(out: Output, now: () => number = Date.now) {
    this.out = out;
    this.now = now;
  }

  show(e: ProgressEvent): void {
    if (e.event === 'manifest') {
      this.settle();
      this.out.write(`${manifestLine(e)}\n`);
      this.bars = e.blobs.map((b) => ({ digest: b.digest, size: b.size, bytes: 0, state: 'waiting' }));
      return this.draw();
    }
    if (e.event === 'image_failed') {
      this.settle();
      this.out.write(`${e.image}: failed: ${e.error}\n`);
      return;
    }
    if (e.event === 'summary') {
      this.settle();
      this.out.write(summaryLine(e));
      return;
    }
    const bar = this.bars.find((b) => b.digest === e.digest);
    if (!bar) return;
    if (e.state === 'bytes') {
      bar.bytes = e.bytes;
      if (this.now() - this.lastDraw < REDRAW_MS) return;
    } else if (e.state === 'started') bar.state = 'fetching';
    else if (e.state === 'done') {
      bar.state = e.cached ? 'cached' : 'fetched';
      bar.bytes = bar.size;
    } else {
      bar.state = 'failed';
      bar.error = e.error;
    }
    this.draw();
  }

  /** The current image's bars are final: drawn once more and left as they are. */
  private settle(): void {
    if (this.bars.length) this.draw();
    this.bars = [];
    this.drawn = 0;
  }

  private draw(): void {
    this.lastDraw = this.now();
    const width = Math.max(40, this.out.columns || 80) - 1;
    // Up to the first bar, then each line cleared and written again.
    let text = this.drawn ? `\x1b[${this.drawn}A` : '';
    for (const bar of this.bars) text += `\r\x1b[2K${barLine(bar).slice(0, width)}\n`;
    this.drawn = this.bars.length;
    this.out.write(text);
  }
}

function barLine(bar: Bar): string {
  const fraction = bar.size > 0 ? Math.min(1, bar.bytes / bar.size) : bar.state === 'waiting' || bar.state === 'fetching' ? 0 : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  const meter = `[${'='.repeat(filled)}${' '.repeat(BAR_WIDTH - filled)}]`;
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
  // Within 80 columns: the digest's hex only, and the size alone once the blob is over.
  const hex = bar.digest.replace(/^sha\d+:/, '').slice(0, 12);
  const amount = bar.state === 'fetching' ? `${humanBytes(bar.bytes)} / ${humanBytes(bar.size)}` : humanBytes(bar.size);
  const state = bar.state === 'failed' ? `failed: ${bar.error ?? ''}` : bar.state;
  return `  ${hex} ${meter} ${percent} ${amount} ${state}`;
}
