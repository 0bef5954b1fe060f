/**
 * Whether the cache directory takes writes. A failed write (disk full, filesystem
 * remounted read-only, an I/O error) pauses caching: fills stream through uncached and
 * manifests and tags stay in memory only, so the edge keeps proxying. A probe (a small
 * file written, synced and removed under tmp/) runs every `retryMs` while paused and
 * resumes caching by itself once it succeeds.
 */
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface WritabilityEvents {
  /** The cache became unwritable (with the error that showed it) or writable again. */
  onChange(writable: boolean, cause: Error | undefined): void;
}

/** Bytes the probe writes: a page, so a filesystem with no free block fails it. */
const PROBE_BYTES = 4096;

export class Writability {
  private readonly tmpDir: string;
  private readonly retryMs: number;
  private readonly events: WritabilityEvents;
  private state = true;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<boolean> | undefined;

  constructor(tmpDir: string, retryMs: number, events: WritabilityEvents) {
    this.tmpDir = tmpDir;
    this.retryMs = retryMs;
    this.events = events;
  }

  get writable(): boolean {
    return this.state;
  }

  /** A write to the cache failed: caching pauses until a probe succeeds (running out of descriptors is not the disk's fault). */
  failed(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code;
    if (!this.state || code === 'EMFILE' || code === 'ENFILE') return;
    this.state = false;
    this.events.onChange(false, err);
    this.timer = setInterval(() => void this.probe(), this.retryMs);
    this.timer.unref();
  }

  /** Tries a write now and returns whether the cache is writable (one probe at a time). */
  probe(): Promise<boolean> {
    this.probing ??= this.tryWrite().then((err) => {
      this.probing = undefined;
      if (err) this.failed(err);
      else this.resumed();
      return this.state;
    });
    return this.probing;
  }

  private resumed(): void {
    if (this.state) return;
    this.state = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.events.onChange(true, undefined);
  }

  private async tryWrite(): Promise<Error | undefined> {
    const path = join(this.tmpDir, `probe.${randomBytes(6).toString('hex')}`);
    try {
      const handle = await open(path, 'wx');
      try {
        const { bytesWritten } = await handle.write(Buffer.alloc(PROBE_BYTES), 0, PROBE_BYTES, 0);
        if (bytesWritten !== PROBE_BYTES) throw Object.assign(new Error(`short write: ${bytesWritten} of ${PROBE_BYTES} bytes`), { code: 'ENOSPC' });
        await handle.datasync();
      } finally {
        await handle.close();
        await unlink(path).catch(() => undefined);
      }
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
