/**
 * The shell blocks of a README, as readme.test.ts runs them (its header states the convention).
 * Parsing only: no process is started here.
 */
import { readFileSync } from 'node:fs';

export interface Block {
  /** `README.md:42`: where the fence opens, for failure messages. */
  where: string;
  /** `sh`, `bash`, `js`…: the fence's language. */
  lang: string;
  text: string;
  /** The reason of a `<!-- readme-test: skip (reason) -->` marker, if the block has one. */
  skip: string | undefined;
  /** A block whose first line is a comment naming a file (`// quickstart.mjs`): written there. */
  file: string | undefined;
}

const SHELL = new Set(['sh', 'bash', 'shell', 'console']);
const MARKER = /^<!--\s*readme-test:\s*skip\s*\(([^)]+)\)\s*-->$/;
const FILE_COMMENT = /^(?:\/\/|#)\s*([\w.-]+\.(?:mjs|js|ts|py|go))\s*$/;

export const isShell = (b: Block) => SHELL.has(b.lang);

/**
 * Every fenced block of `path`, in order; with `section`, only those under that `## ` heading (up
 * to the next one). The marker is the last non-blank line before the fence.
 */
export function readBlocks(path: string, label: string, section?: string): Block[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const blocks: Block[] = [];
  let inSection = section === undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (section !== undefined && line.startsWith('## ')) inSection = line.slice(3).trim() === section;
    const fence = /^```(\w*)\s*$/.exec(line);
    if (!fence) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    if (!inSection) continue;
    let before = start - 1;
    while (before >= 0 && lines[before]!.trim() === '') before--;
    const marker = before >= 0 ? MARKER.exec(lines[before]!.trim()) : null;
    const lang = fence[1] ?? '';
    blocks.push({
      where: `${label}:${start + 1}`,
      lang,
      text: body.join('\n'),
      skip: marker?.[1],
      file: SHELL.has(lang) ? undefined : FILE_COMMENT.exec(body[0] ?? '')?.[1],
    });
  }
  return blocks;
}

/**
 * Setup steps that `npm ci` has already done in the checkout the test runs from (the root
 * `prepare` script builds the SDK and the bundle). Running them here would rewrite the
 * node_modules and dist/ that other suites are reading.
 */
const DONE_BY_NPM_CI = /^(?:npm ci|npm install|npm run (?:-s )?build(?: -w \S+)?)$/;

/** The block's commands without the steps `npm ci` did; chains split at ` && ` where needed. */
export function withoutSetup(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      if (line.trim() === '' || line.trimStart().startsWith('#') || line.endsWith('\\')) return line;
      const parts = line.split(' && ');
      const kept = parts.filter((p) => !DONE_BY_NPM_CI.test(p.trim()));
      return kept.length === parts.length ? line : kept.join(' && ');
    })
    .join('\n');
}

/** Whether the block (after withoutSetup) only starts the broker: the test runs that itself. */
export const startsBroker = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .join('\n') === 'npm start';
