/** Platforms as `prewarm.platforms` and `--platform` write them: `os/arch` or `os/arch/variant`. */

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant: string | undefined;
}

const PLATFORM = /^([a-z0-9_.-]+)\/([a-z0-9_.-]+)(?:\/([a-z0-9_.-]+))?$/;

export function parsePlatform(text: string): Platform | undefined {
  const m = PLATFORM.exec(text);
  if (!m) return undefined;
  return { os: m[1] as string, architecture: m[2] as string, variant: m[3] };
}

export function showPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * Whether an index entry's platform is one of `wanted` (none wanted: all are). A wanted
 * platform without a variant takes every variant of its os/arch.
 */
export function platformWanted(wanted: readonly Platform[], entry: Platform | undefined): boolean {
  if (wanted.length === 0) return true;
  if (!entry) return false;
  return wanted.some((w) => w.os === entry.os && w.architecture === entry.architecture && (w.variant === undefined || w.variant === entry.variant));
}
