/** Single-range `Range: bytes=...` requests (RFC 9110 §14), the only kind blob clients send. */
export type RangeSpec = { readonly start: number; readonly end: number | undefined } | { readonly suffix: number };

/**
 * undefined: no Range, or one the server may ignore (other units, several ranges,
 * bad syntax): the whole blob is sent with 200, as RFC 9110 allows.
 */
export function parseRange(header: string | undefined): RangeSpec | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d{0,15})\s*-\s*(\d{0,15})\s*$/i.exec(header);
  if (!m) return undefined;
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return undefined;
  if (first === '') return { suffix: Number(last) };
  const start = Number(first);
  const end = last === '' ? undefined : Number(last) + 1;
  if (end !== undefined && end <= start) return undefined;
  return { start, end };
}

/** [start, end) within a blob of `size` bytes, or 'unsatisfiable' (416). */
export function resolveRange(spec: RangeSpec, size: number): { start: number; end: number } | 'unsatisfiable' {
  if ('suffix' in spec) {
    if (spec.suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - spec.suffix), end: size };
  }
  if (spec.start >= size) return 'unsatisfiable';
  return { start: spec.start, end: Math.min(size, spec.end ?? size) };
}
