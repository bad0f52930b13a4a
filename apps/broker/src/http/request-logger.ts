import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions } from 'pino';

type LogFn = FastifyBaseLogger['info'];

/**
 * A request's logger (`request.log`), made into pino's child logger only when something logs
 * through it. Fastify builds a child per request; with our serializers and redaction a CPU profile
 * put that at ~2 µs of every request, while most requests never log through it (the access line is
 * written apart, logger.ts). Lines are the child's, with the request id bound.
 */
class RequestLogger {
  #child: FastifyBaseLogger | undefined;
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #real(): FastifyBaseLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }
  set level(level: string) {
    this.#real().level = level;
  }
  info(...args: Parameters<LogFn>): void {
    this.#real().info(...args);
  }
  error(...args: Parameters<LogFn>): void {
    this.#real().error(...args);
  }
  warn(...args: Parameters<LogFn>): void {
    this.#real().warn(...args);
  }
  debug(...args: Parameters<LogFn>): void {
    this.#real().debug(...args);
  }
  trace(...args: Parameters<LogFn>): void {
    this.#real().trace(...args);
  }
  fatal(...args: Parameters<LogFn>): void {
    this.#real().fatal(...args);
  }
  silent(...args: Parameters<LogFn>): void {
    this.#real().silent(...args);
  }
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options);
  }
}

/** Fastify's `childLoggerFactory`: the request's logger, built on first use. */
export function requestLoggerFactory(
  this: unknown,
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return new RequestLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
}
