// A progress bar on stderr: redrawn in place on a terminal, one line per
// 10 % step otherwise (CI logs stay short).
export class Progress {
  #total;
  #label;
  #done = 0;
  #lastStep = -1;
  #t0 = Date.now();

  constructor(total, label) {
    this.#total = Math.max(1, total);
    this.#label = label;
    this.#draw('');
  }

  tick(note = '', n = 1) {
    this.#done = Math.min(this.#total, this.#done + n);
    this.#draw(note);
  }

  note(note) {
    this.#draw(note);
  }

  done(note = 'done') {
    this.#done = this.#total;
    this.#draw(note, true);
    if (process.stderr.isTTY) process.stderr.write('\n');
  }

  #draw(note, force = false) {
    const frac = this.#done / this.#total;
    const width = 30;
    const bar = '#'.repeat(Math.round(frac * width)).padEnd(width, '.');
    const secs = ((Date.now() - this.#t0) / 1000).toFixed(0);
    const line = `${this.#label} [${bar}] ${this.#done}/${this.#total} ${secs}s ${note}`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 120) - 1)}`);
      return;
    }
    const step = Math.floor(frac * 10);
    if (step !== this.#lastStep || force) {
      this.#lastStep = step;
      process.stderr.write(`${line}\n`);
    }
  }
}
