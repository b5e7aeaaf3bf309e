// Loaded by the page check_browser.cmake writes. For every (name, svg, trace, ops) in CASES:
// - the SVG is loaded as a document of its own (strict XML parsing) in an iframe; its op boxes
//   (rect.op) are counted and it is drawn onto a canvas at its own size, whose non-white pixels
//   are counted (a blank or unparsable picture has none);
// - the trace is parsed with JSON.parse as the Trace Event Format (traceEvents: "X" events with
//   numeric ts, dur, pid, tid; every flow start "s" has a matching finish "f" with the same id).
// One line per case goes into <pre id="result">, then document.title becomes "done".
async function loadText(frame, url) {
  return new Promise((resolve, reject) => {
    frame.onload = () => resolve(frame.contentDocument);
    frame.onerror = reject;
    frame.src = url;
  });
}

async function checkSvg(name, url, expectedOps) {
  const frame = document.createElement('iframe');
  document.body.appendChild(frame);
  const doc = await loadText(frame, url);
  const svg = doc.documentElement;
  if (doc.getElementsByTagName('parsererror').length > 0 || svg.nodeName !== 'svg') return `svg ${name} FAIL unparsable`;
  const ops = doc.querySelectorAll('rect.op').length;
  const width = Number(svg.getAttribute('width')), height = Number(svg.getAttribute('height'));
  const blob = new Blob([new XMLSerializer().serializeToString(doc)], {type: 'image/svg+xml'});
  const image = new Image();
  await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = reject; image.src = URL.createObjectURL(blob); });
  const canvas = document.createElement('canvas');
  canvas.width = width; canvas.height = height;
  const context = canvas.getContext('2d');
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, width, height);
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, width, height).data;
  let coloured = 0;
  for (let k = 0; k < pixels.length; k += 4)
    if (pixels[k] < 200 || pixels[k + 1] < 200 || pixels[k + 2] < 200) ++coloured;
  const share = coloured / (width * height);
  const ok = ops === expectedOps && image.naturalWidth === width && image.naturalHeight === height && share > 0.05;
  frame.remove();
  return `svg ${name} ${ok ? 'OK' : 'FAIL'} ops=${ops}/${expectedOps} size=${image.naturalWidth}x${image.naturalHeight}/${width}x${height} coloured=${share.toFixed(3)}`;
}

async function checkTrace(name, url, expectedOps) {
  const frame = document.createElement('iframe');
  document.body.appendChild(frame);
  const doc = await loadText(frame, url);
  let trace;
  try { trace = JSON.parse(doc.body.textContent); } catch (e) { return `trace ${name} FAIL JSON.parse: ${e.message}`; }
  frame.remove();
  if (!Array.isArray(trace.traceEvents)) return `trace ${name} FAIL no traceEvents array`;
  let complete = 0, bad = 0;
  const flows = new Map();
  for (const e of trace.traceEvents) {
    if (typeof e.ph !== 'string' || typeof e.pid !== 'number' || typeof e.tid !== 'number') { ++bad; continue; }
    if (e.ph === 'X') {
      ++complete;
      if (typeof e.name !== 'string' || typeof e.ts !== 'number' || typeof e.dur !== 'number' || e.dur < 0 ||
          typeof e.args !== 'object' || typeof e.args.stage !== 'number' || typeof e.args.microbatch !== 'number') ++bad;
    } else if (e.ph === 's' || e.ph === 'f') {
      if (typeof e.ts !== 'number' || e.id === undefined) ++bad;
      flows.set(e.id, (flows.get(e.id) || 0) + (e.ph === 's' ? 1 : 10));
    } else if (e.ph !== 'M') {
      ++bad;
    }
  }
  let unmatched = 0;
  for (const v of flows.values()) if (v !== 11) ++unmatched;
  const ok = complete === expectedOps && bad === 0 && unmatched === 0;
  return `trace ${name} ${ok ? 'OK' : 'FAIL'} complete=${complete}/${expectedOps} bad=${bad} flows=${flows.size} unmatched=${unmatched}`;
}

(async () => {
  const lines = [];
  for (const [name, svg, trace, ops] of CASES) {
    try { lines.push(await checkSvg(name, svg, ops)); } catch (e) { lines.push(`svg ${name} FAIL ${e}`); }
    try { lines.push(await checkTrace(name, trace, ops)); } catch (e) { lines.push(`trace ${name} FAIL ${e}`); }
  }
  document.getElementById('result').textContent = '\n' + lines.join('\n') + '\n';
  document.title = 'done';
})();
