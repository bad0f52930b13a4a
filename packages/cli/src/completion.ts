/** `nexus completion bash|zsh|fish`: completion scripts generated from the command table. */
import { COMMANDS } from './help.ts';
import { CliError } from './io.ts';

const FLAGS = [
  '--file',
  '--prune',
  '--yes',
  '--update-secrets',
  '--agent-secrets',
  '--out',
  '--url',
  '--profile',
  '--output',
  '--json',
  '--help',
  '--user',
  '--zone',
  '--follow',
  '--limit',
  '--event-type',
  '--actor',
  '--resource',
  '--since',
  '--status',
  '--detailed-exitcode',
  '--client-id',
  '--client-secret-file',
  '--name',
  '--scopes',
];

export function completionScript(shell: string | undefined): string {
  const commands = Object.keys(COMMANDS);
  const subs = Object.entries(COMMANDS).filter(([, c]) => c.subcommands);
  if (shell === 'bash') {
    const cases = subs.map(
      ([n, c]) => `    ${n}) COMPREPLY=( $(compgen -W "${c.subcommands!.join(' ')}" -- "$cur") ); return ;;`,
    );
    return `# bash completion for nexus
_nexus() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -f|--file|--out|--agent-secrets|--client-secret-file) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    -o|--output) COMPREPLY=( $(compgen -W "table json yaml" -- "$cur") ); return ;;
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "${FLAGS.join(' ')}" -- "$cur") ); return; fi
  if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=( $(compgen -W "${commands.join(' ')}" -- "$cur") ); return; fi
  if [[ $COMP_CWORD -eq 2 ]]; then
    case "\${COMP_WORDS[1]}" in
${cases.join('\n')}
    esac
  fi
}
complete -F _nexus nexus
`;
  }
  if (shell === 'zsh') {
    const cases = subs.map(([n, c]) => `        ${n}) _values 'subcommand' ${c.subcommands!.join(' ')} ;;`);
    return `#compdef nexus
# zsh completion for nexus
_nexus() {
  local -a commands
  commands=(
${Object.entries(COMMANDS)
  .map(([n, c]) => `    '${n}:${c.summary.replace(/'/g, "'\\''").replace(/:/g, '\\:')}'`)
  .join('\n')}
  )
  _arguments -C \\
    '(-f --file)'{-f,--file}'[manifest file]:file:_files' \\
    '(-o --output)'{-o,--output}'[output format]:format:(table json yaml)' \\
${FLAGS.filter((f) => f !== '--file' && f !== '--output')
  .map((f) => `    '${f}[${f.slice(2)}]' \\`)
  .join('\n')}
    '1:command:->command' \\
    '2:subcommand:->sub' \\
    '*::arg:->args'
  case $state in
    command) _describe 'command' commands ;;
    sub)
      case $words[2] in
${cases.join('\n')}
      esac ;;
  esac
}
compdef _nexus nexus
`;
  }
  if (shell === 'fish') {
    const lines = [
      '# fish completion for nexus',
      'complete -c nexus -f',
      ...Object.entries(COMMANDS).map(
        ([n, c]) =>
          `complete -c nexus -n __fish_use_subcommand -a ${n} -d '${c.summary.replace(/'/g, "\\'").slice(0, 80)}'`,
      ),
      ...subs.map(
        ([n, c]) =>
          `complete -c nexus -n '__fish_seen_subcommand_from ${n}' -a '${c.subcommands!.join(' ')}'`,
      ),
      "complete -c nexus -s f -l file -r -F -d 'manifest file'",
      "complete -c nexus -s o -l output -x -a 'table json yaml' -d 'output format'",
      ...FLAGS.filter((f) => f !== '--file' && f !== '--output').map(
        (f) => `complete -c nexus -l ${f.slice(2)}`,
      ),
    ];
    return `${lines.join('\n')}\n`;
  }
  throw new CliError('usage: nexus completion bash|zsh|fish');
}
