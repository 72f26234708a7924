/** How the command line talks to its caller: exit codes and output streams (tests pass their own). */

export const EXIT = { ok: 0, invalidConfig: 1, usage: 2, runtime: 3 } as const;

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const defaultIo: CliIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};
