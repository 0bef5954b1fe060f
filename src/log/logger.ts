import { pino, type Logger } from 'pino';

export type { Logger };

/** One logger for the process, created at start and passed down (never imported as a global). */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'registry-edge' } }, destination ?? pino.destination({ sync: false }));
}
