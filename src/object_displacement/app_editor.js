// The app's photo editor: the body of a gr.HTML component's js_on_load (element, trigger,
// props, watch are Gradio's). It draws the view the server sends (object_displacement.app_view:
// a display-size photo, the mask and destination as polygons in photo pixels, the object cut
// out) and sends back, as the 'submit' event's data, what the pointer did, in photo pixels:
//   {kind: "click", x, y}                a click (its meaning is the page's mode)
//   {kind: "drag", dx, dy}               the object dragged (screen right and down)
//   {kind: "stroke", points, radius}     a brush stroke (mode brush +/-)
// Wheel zooms about the pointer; the right or middle button (or shift + drag) pans; the
// buttons zoom and fit; Ctrl+Z / Ctrl+Shift+Z undo and redo. Outlines are 2 screen pixels
// wide at any zoom.
const canvas = element.querySelector("canvas");
const ctx = canvas.getContext("2d");
const DRAG_START = 4; // screen px a press must travel to be a drag, not a click
let shown = null; // the server's view
let photo = null; // its decoded photo, kept while the key is the same
let photoKey = null;
let cut = null; // the decoded cutout
let cutUrl = null;
let zoom = 1, panX = 0, panY = 0, fitted = false;
let press = null; // {x, y, sx, sy, button, kind: "click"|"drag"|"stroke"|"pan", points: []}
let hover = null;

function parse(value) {
  if (!value) return null;
  try { return typeof value === "string" ? JSON.parse(value) : value; } catch (e) { return null; }
}

function load(url, done) {
  const img = new Image();
  img.onload = () => done(img);
  img.src = url;
  return img;
}

function fit() {
  if (!shown) return;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  zoom = Math.min(w / shown.photo.width, h / shown.photo.height);
  panX = (w - shown.photo.width * zoom) / 2;
  panY = (h - shown.photo.height * zoom) / 2;
  fitted = true;
}

function toPhoto(sx, sy) { return [(sx - panX) / zoom, (sy - panY) / zoom]; }
function toScreen(x, y) { return [x * zoom + panX, y * zoom + panY]; }

function trace(shapes) {
  const path = new Path2D();
  for (const shape of shapes) {
    shape.forEach(([x, y], i) => (i ? path.lineTo(x, y) : path.moveTo(x, y)));
    path.closePath();
  }
  return path;
}

function inside(shapes, x, y) {
  if (!shapes.length) return false;
  ctx.setTransform(zoom, 0, 0, zoom, panX, panY); // the path is in photo pixels, the test point on screen
  const [sx, sy] = toScreen(x, y);
  return ctx.isPointInPath(trace(shapes), sx, sy, "evenodd");
}

// Where the object is drawn with the move (dx, dy up) plus a drag (screen right/down).
function placeTransform(extraX, extraY) {
  const m = shown.move, [ax, ay] = shown.anchor;
  ctx.translate(ax + m.dx + extraX, ay - m.dy + extraY);
  ctx.scale(m.flip ? -m.scale : m.scale, m.scale);
  ctx.translate(-ax, -ay);
}

function draw() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#20232a";
  ctx.fillRect(0, 0, w, h);
  if (!shown || !photo) {
    ctx.fillStyle = "#aaa";
    ctx.font = "16px sans-serif";
    ctx.fillText("Open a photo: upload one or pick a sample.", 20, 30);
    return;
  }
  ctx.setTransform(zoom, 0, 0, zoom, panX, panY);
  ctx.imageSmoothingEnabled = zoom < 2;
  ctx.drawImage(photo, 0, 0, shown.photo.width, shown.photo.height);
  const line = 2 / zoom; // 2 screen px at any zoom
  if (shown.mask.length) {
    const path = trace(shown.mask);
    ctx.fillStyle = "rgba(255, 60, 60, 0.35)";
    ctx.fill(path, "evenodd");
    ctx.lineWidth = line;
    ctx.strokeStyle = "#ff3c3c";
    ctx.stroke(path);
  }
  const dragging = press && press.kind === "drag";
  const moved = shown.move.dx || shown.move.dy || shown.move.scale !== 1 || shown.move.flip;
  if (cut && shown.cutout && (dragging || moved)) {
    const [ddx, ddy] = dragging ? [press.dx || 0, press.dy || 0] : [0, 0];
    const [x0, y0, x1, y1] = shown.cutout.box;
    ctx.save();
    placeTransform(ddx, ddy);
    ctx.globalAlpha = 0.85;
    ctx.drawImage(cut, x0, y0, x1 - x0, y1 - y0);
    ctx.restore();
  }
  if (shown.destination.length && !dragging) {
    ctx.lineWidth = line;
    ctx.strokeStyle = "#00e5ff";
    ctx.setLineDash([6 / zoom, 4 / zoom]);
    ctx.stroke(trace(shown.destination));
    ctx.setLineDash([]);
  }
  const r = 6 / zoom;
  shown.points.forEach(([x, y], i) => {
    ctx.beginPath();
    ctx.arc(x + 0.5, y + 0.5, r, 0, 2 * Math.PI);
    ctx.fillStyle = shown.labels[i] ? "#00dc00" : "#ff2828";
    ctx.fill();
    ctx.lineWidth = 1.5 / zoom;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  });
  if (shown.box) {
    const [x0, y0, x1, y1] = shown.box;
    ctx.lineWidth = line;
    ctx.strokeStyle = "#00dc00";
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
  if (shown.corner) {
    const [x, y] = shown.corner;
    ctx.lineWidth = line;
    ctx.strokeStyle = "#00dc00";
    ctx.beginPath();
    ctx.moveTo(x - 3 * r, y); ctx.lineTo(x + 3 * r, y);
    ctx.moveTo(x, y - 3 * r); ctx.lineTo(x, y + 3 * r);
    ctx.stroke();
  }
  const brushing = shown.mode.startsWith("brush");
  if (press && press.kind === "stroke") {
    ctx.lineWidth = 2 * shown.radius;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.strokeStyle = shown.mode === "brush +" ? "rgba(0, 220, 0, 0.5)" : "rgba(40, 40, 255, 0.5)";
    ctx.beginPath();
    press.points.forEach(([x, y], i) => (i ? ctx.lineTo(x + 0.5, y + 0.5) : ctx.moveTo(x + 0.5, y + 0.5)));
    if (press.points.length === 1) ctx.lineTo(press.points[0][0] + 0.5, press.points[0][1] + 0.51);
    ctx.stroke();
  }
  if (dragging) { // dx, dy follow the pointer
    const dx = shown.move.dx + Math.round(press.dx || 0), dy = shown.move.dy - Math.round(press.dy || 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(8, 8, 170, 26);
    ctx.fillStyle = "#fff";
    ctx.font = "15px sans-serif";
    ctx.fillText(`dx=${dx}, dy=${dy}`, 16, 26);
    ctx.setTransform(zoom, 0, 0, zoom, panX, panY);
  }
  if (brushing && hover) {
    ctx.lineWidth = 1.5 / zoom;
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    ctx.arc(hover[0], hover[1], Math.max(shown.radius, 1), 0, 2 * Math.PI);
    ctx.stroke();
  }
}

function show(value) {
  const next = parse(value);
  if (!next) { shown = null; photo = null; photoKey = null; draw(); return; }
  const newPhoto = !shown || next.photo.key !== photoKey;
  shown = next;
  if (newPhoto) {
    photoKey = next.photo.key;
    fitted = false;
    load(next.photo.url, (img) => { if (photoKey === next.photo.key) { photo = img; if (!fitted) fit(); draw(); } });
  }
  if (next.cutout && next.cutout.url !== cutUrl) {
    cutUrl = next.cutout.url;
    load(cutUrl, (img) => { if (cutUrl === next.cutout.url) { cut = img; draw(); } });
  } else if (!next.cutout) { cut = null; cutUrl = null; }
  draw();
}

function local(event) {
  const rect = canvas.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

// Whether a press at photo pixel (x, y) grabs the object: on it where it stands now (the
// destination, or the mask before a move), or in the box of its moved cut-out (so an object
// dragged off the photo can be grabbed back).
function onObject(x, y) {
  if (!shown || !shown.mask.length) return false;
  const m = shown.move;
  if (!m.dx && !m.dy && m.scale === 1 && !m.flip) return inside(shown.mask, x, y);
  if (inside(shown.destination, x, y)) return true;
  const [x0, y0, x1, y1] = shown.cutout.box, [ax, ay] = shown.anchor;
  const xs = [x0, x1].map((v) => ax + m.dx + (m.flip ? -1 : 1) * m.scale * (v - ax));
  const ys = [y0, y1].map((v) => ay - m.dy + m.scale * (v - ay));
  return x >= Math.min(...xs) && x <= Math.max(...xs) && y >= Math.min(...ys) && y <= Math.max(...ys);
}

canvas.addEventListener("contextmenu", (e) => e.preventDefault());
canvas.addEventListener("pointerdown", (event) => {
  if (!shown || !photo) return;
  canvas.setPointerCapture(event.pointerId);
  const [sx, sy] = local(event);
  const [x, y] = toPhoto(sx, sy);
  let kind = "click";
  if (event.button !== 0 || event.shiftKey) kind = "pan";
  else if (shown.mode.startsWith("brush")) kind = "stroke";
  press = { x, y, sx, sy, kind, points: [[Math.floor(x), Math.floor(y)]], panX, panY, object: onObject(x, y) };
  if (kind === "stroke") draw();
});
canvas.addEventListener("pointermove", (event) => {
  const [sx, sy] = local(event);
  hover = toPhoto(sx, sy);
  if (!press) { if (shown && shown.mode.startsWith("brush")) draw(); return; }
  const far = Math.hypot(sx - press.sx, sy - press.sy) >= DRAG_START;
  if (press.kind === "click" && far) press.kind = press.object ? "drag" : "click";
  if (press.kind === "pan") {
    panX = press.panX + sx - press.sx;
    panY = press.panY + sy - press.sy;
  } else if (press.kind === "drag") {
    press.dx = hover[0] - press.x;
    press.dy = hover[1] - press.y;
  } else if (press.kind === "stroke") {
    press.points.push([Math.floor(hover[0]), Math.floor(hover[1])]);
  }
  draw();
});
function release(event) {
  if (!press) return;
  const done = press;
  press = null;
  const w = shown.photo.width, h = shown.photo.height;
  if (done.kind === "drag") {
    trigger("submit", { kind: "drag", dx: Math.round(done.dx || 0), dy: Math.round(done.dy || 0) });
  } else if (done.kind === "stroke") {
    trigger("submit", { kind: "stroke", points: done.points, radius: shown.radius });
  } else if (done.kind === "click" && event.type === "pointerup") {
    const x = Math.floor(done.x), y = Math.floor(done.y);
    if (x >= 0 && y >= 0 && x < w && y < h) trigger("submit", { kind: "click", x, y });
  }
  draw();
}
canvas.addEventListener("pointerup", release);
canvas.addEventListener("pointercancel", release);
canvas.addEventListener("pointerleave", () => { hover = null; draw(); });
canvas.addEventListener("wheel", (event) => {
  if (!shown) return;
  event.preventDefault();
  const [sx, sy] = local(event);
  const [x, y] = toPhoto(sx, sy);
  zoom *= Math.exp(-event.deltaY * 0.0015);
  zoom = Math.min(Math.max(zoom, 0.02), 40);
  panX = sx - x * zoom;
  panY = sy - y * zoom;
  draw();
}, { passive: false });

function zoomBy(factor) {
  const w = canvas.clientWidth / 2, h = canvas.clientHeight / 2;
  const [x, y] = toPhoto(w, h);
  zoom *= factor;
  panX = w - x * zoom;
  panY = h - y * zoom;
  draw();
}
element.querySelector(".od-zoom-in").addEventListener("click", () => zoomBy(1.5));
element.querySelector(".od-zoom-out").addEventListener("click", () => zoomBy(1 / 1.5));
element.querySelector(".od-fit").addEventListener("click", () => { fit(); draw(); });
new ResizeObserver(() => { if (!fitted) fit(); draw(); }).observe(canvas);

// Ctrl+Z undoes, Ctrl+Shift+Z or Ctrl+Y redoes (the page's buttons), unless typing in a box.
function onKey(event) {
  const el = document.activeElement;
  const typing = el && (el.tagName === "TEXTAREA" || el.isContentEditable ||
    (el.tagName === "INPUT" && !["radio", "checkbox", "button", "range"].includes(el.type)));
  if (typing || !(event.ctrlKey || event.metaKey)) return;
  const key = event.key.toLowerCase();
  const button = key === "y" || (key === "z" && event.shiftKey) ? "#redo" : key === "z" ? "#undo" : null;
  if (button && document.querySelector(button)) {
    event.preventDefault();
    document.querySelector(button).click();
  }
}
if (!window.odEditorKeys) { // once per page, however often the editor mounts
  window.odEditorKeys = true;
  document.addEventListener("keydown", onKey);
}

// For tests and for scripts: photo pixels to the canvas's client pixels and back.
canvas.odEditor = { toScreen, toPhoto, view: () => shown, ready: () => Boolean(photo) };
watch("value", () => show(props.value));
show(props.value);
