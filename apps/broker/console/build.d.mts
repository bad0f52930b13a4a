/** Compiles the console's frontend into `outdir` (app.js and app.css). */
export function buildConsole(outdir: string): Promise<void>;
