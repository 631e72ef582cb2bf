// Vega-Lite spec -> SVG text, rendered headless (no canvas, no fonts needed).
import { writeFileSync } from 'node:fs';
import * as vega from 'vega';
import * as vl from 'vega-lite';

export async function toSvg(vlSpec) {
  const spec = vl.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    ...vlSpec,
  }).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function writeChart(path, vlSpec) {
  writeFileSync(path, await toSvg(vlSpec));
  return path;
}
