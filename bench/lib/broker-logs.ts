/**
 * Broker log lines at warn (pino level 40) and above, per replica: counted, and tallied by message
 * so that a report can show what was logged and how often. A line that is not JSON counts as an
 * error (a crash trace, say).
 */
export interface LogMessage {
  replica: number;
  level: number;
  msg: string;
  count: number;
}

export function createLogTally(replicas: number) {
  const counts = Array.from({ length: replicas }, () => ({ warn: 0, error: 0 }));
  const messages = new Map<string, LogMessage>();
  return {
    counts,
    /** The line handler for one replica's output. */
    onLine: (replica: number) => (line: string) => {
      let level = 50;
      let msg = line;
      try {
        const entry = JSON.parse(line) as {
          level?: number;
          msg?: string;
          code?: string;
          detail?: string;
          err?: { message?: string };
        };
        level = entry.level ?? 50;
        // The internal detail (logged, never sent) says more than the caller-safe message.
        const why = entry.detail ?? entry.err?.message;
        msg = `${entry.msg ?? ''}${entry.code ? ` [${entry.code}]` : ''}${why ? `: ${why}` : ''}`;
      } catch {}
      if (level < 40) return;
      if (level >= 50) counts[replica]!.error++;
      else counts[replica]!.warn++;
      const key = `${replica} ${level} ${msg.slice(0, 160)}`;
      const seen = messages.get(key);
      if (seen) seen.count++;
      else messages.set(key, { replica, level, msg: msg.slice(0, 300), count: 1 });
    },
    /** Most frequent first. */
    messages: (): LogMessage[] => [...messages.values()].sort((a, b) => b.count - a.count),
  };
}

export type LogTally = ReturnType<typeof createLogTally>;
