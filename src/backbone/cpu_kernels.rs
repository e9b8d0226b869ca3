//! The CPU backend's own layers: VGG's 3x3 convolution (stride 1, zero padding 1) with its
//! bias and ReLU and its 2x2 max pool, and the face generator's 4x4 transposed convolution,
//! each with its input gradient, as autodiff operations of burn's `flex` backend.
//!
//! flex's own conv2d builds an im2col matrix of every layer, rearranges the whole weight tensor
//! on each call and writes its result out channel by channel with a strided scalar loop (17% of
//! a conv3_1 step at 64 px, natively). Here the input is zero-padded once; then, with the
//! output computed on the padded grid (two spare columns per row, dropped on the way out),
//! each of the nine taps reads the padded planes at one fixed offset, so the convolution is nine
//! accumulated matrix products straight from the padded input, with no im2col copy (a layer
//! with very few input channels, conv1_1's 3, copies a strip's nine views into one matrix of
//! depth 27 instead: nine products of depth 3 would each sweep the accumulator). The work is
//! split into strips of whole rows, which keeps a strip's accumulator in cache across the nine
//! products. The input gradient is the same computation on the weights turned by 180 degrees
//! with input and output swapped, which the backbone keeps beside the weights; both are read
//! in place through their strides.
//!
//! flex's max pool takes general windows, strides and padding and checks for NaN at every
//! element (1.0 ms for pool1 at 64 px, a third of conv1_2); the 2x2 pool here keeps, for its
//! backward pass, which of its four inputs won as one byte.

use burn::tensor::{Tensor, TensorData};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn_autodiff::Autodiff;
use burn_flex::{Flex, FlexTensor};

/// Output pixels (on the padded grid) a strip aims for. Natively, conv3_1 steps at 64 / 128 /
/// 224 px (ms, two runs): 256 columns 8.2-8.5 / 31.5-32.7 / 94-96, 512 7.2-7.5 / 28.0 / 90-97,
/// 1024 7.0-7.6 / 25.5-26.4 / 91, 2048 6.6-7.1 / 26-27 / 91-94 with the forward pass at 224 px
/// 20% slower (its 256-channel accumulator no longer stays in L2).
const STRIP_COLUMNS: usize = 1024;

/// Input channels up to which a strip copies its nine shifted views into one matrix (conv1_1:
/// 3) rather than making nine products from the padded planes. The page's one-thread CPU
/// generation step went from 111-116 to 101-104 ms with it (two runs each).
const FEW_CHANNELS: usize = 8;

/// `relu(conv3x3(x, w) + b)` on the CPU backend, differentiable where `x` tracks gradients.
/// `None` where a tensor is not flex's (another backend, or a checkpointing autodiff the op
/// does not handle): the caller then takes burn's generic path.
/// `w_t` is `w` turned by 180 degrees with input and output swapped ([in, out, 3, 3]): the
/// input gradient is the same convolution of the output gradient with it.
pub fn conv3x3_relu(x: &Tensor<4>, w: &Tensor<4>, w_t: &Tensor<4>, b: &Tensor<1>) -> Option<Tensor<4>> {
    if !on_cpu(x) {
        return None;
    }
    let weights = || Some((w.clone().try_into_primitive::<Flex>().ok()?, b.clone().try_into_primitive::<Flex>().ok()?));
    if let Ok(x) = x.clone().try_into_primitive::<Flex>() {
        let (w, b) = weights()?;
        return Some(Tensor::from_primitive::<Flex>(forward(&x, &w, &b)));
    }
    let x = x.clone().try_into_primitive::<Autodiff<Flex, NoCheckpointing>>().ok()?;
    let (w, b) = weights()?;
    let weight_t = w_t.clone().try_into_primitive::<Flex>().ok()?;
    let out = match ConvReluBackward.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.primitive(), &w, &b);
            prep.finish(ConvState { weight_t, output: y.clone() }, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), &w, &b)),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, NoCheckpointing>>(out))
}

/// 2x2 max pool, stride 2, on the CPU backend (`None` as for [`conv3x3_relu`]).
pub fn max_pool2x2(x: &Tensor<4>) -> Option<Tensor<4>> {
    if !on_cpu(x) {
        return None;
    }
    if let Ok(x) = x.clone().try_into_primitive::<Flex>() {
        return Some(Tensor::from_primitive::<Flex>(pool(&x, false).0));
    }
    let x = x.clone().try_into_primitive::<Autodiff<Flex, NoCheckpointing>>().ok()?;
    let out = match PoolBackward.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (y, winners) = pool(x.primitive(), true);
            prep.finish(PoolState { input: x.primitive().layout().shape().dims::<4>(), winners: winners.into() }, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(pool(x.primitive(), false).0),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, NoCheckpointing>>(out))
}

/// The face generator's transposed convolution (4x4 kernels, no bias) on the CPU backend,
/// differentiable where `x` tracks gradients; `w` is [in, out, 4, 4] and stays fixed. `None`
/// as for [`conv3x3_relu`].
///
/// burn's own input gradient of this op is flex's im2col conv2d, which rearranges the whole
/// weight tensor on every call: 11-12 ms of a generator-route step, against 4-5 ms for the
/// generator's forward pass (natively, this host). Read as one matrix, [in, out * 16], the
/// stored weights need no rearranging in either direction: the forward pass is the product of
/// its transpose with the input, scattered onto the output grid, and the input gradient the
/// product of the matrix itself with the output gradient gathered from that grid.
pub fn conv_transpose4x4(x: &Tensor<4>, w: &Tensor<4>, stride: usize, padding: usize) -> Option<Tensor<4>> {
    if !on_cpu(x) {
        return None;
    }
    let w = w.clone().try_into_primitive::<Flex>().ok()?.to_contiguous();
    let grid = Grid { stride, padding };
    if let Ok(x) = x.clone().try_into_primitive::<Flex>() {
        return Some(Tensor::from_primitive::<Flex>(grid.scatter(&x, &w)));
    }
    let x = x.clone().try_into_primitive::<Autodiff<Flex, NoCheckpointing>>().ok()?;
    let out = match TransposeBackward.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let input = x.primitive().layout().shape().dims::<4>();
            let y = grid.scatter(x.primitive(), &w);
            prep.finish(TransposeState { weight: w, grid, input }, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(grid.scatter(x.primitive(), &w)),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, NoCheckpointing>>(out))
}

/// Where a transposed convolution's 4x4 kernel lands: input pixel (y, x) with kernel tap
/// (ky, kx) feeds output pixel (stride * y + ky - padding, stride * x + kx - padding).
#[derive(Clone, Copy, Debug)]
struct Grid {
    stride: usize,
    padding: usize,
}

impl Grid {
    fn output(&self, h: usize) -> usize {
        (h - 1) * self.stride + 4 - 2 * self.padding
    }
    /// The output coordinate of input coordinate `i` under tap `k`, where it is on the grid.
    fn at(&self, i: usize, k: usize, size: usize) -> Option<usize> {
        (self.stride * i + k).checked_sub(self.padding).filter(|&o| o < size)
    }

    /// Forward pass: per image, columns [out * 16, h * w] = weights^T x input, each added onto
    /// the output pixel it feeds.
    fn scatter(&self, x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
        let [n, cin, h, wd] = x.layout().shape().dims::<4>();
        let [_, cout, _, _] = w.layout().shape().dims::<4>();
        let (oh, ow, rows, hw) = (self.output(h), self.output(wd), cout * 16, h * wd);
        let x = x.to_contiguous();
        let (x, w) = (slice(&x), slice(w));
        let mut out = vec![0.0f32; n * cout * oh * ow];
        let mut columns = vec![0.0f32; rows * hw];
        for (i, y) in out.chunks_exact_mut(cout * oh * ow).enumerate() {
            let blocks = split(rows, 16);
            let shared = Shared(columns.as_mut_ptr());
            let x = &x[i * cin * hw..];
            for_each_task(blocks.len(), |b| {
                let (r0, r1) = blocks[b];
                // SAFETY: rows r0..r1 of the columns belong to this task alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(shared.at(r0 * hw), (r1 - r0) * hw) };
                multiply(dst, [r1 - r0, hw, cin], false, &w[r0..], [1, rows], x, hw);
            });
            let (shared, columns) = (Shared(y.as_mut_ptr()), &columns);
            for_each_task(cout, |o| {
                // SAFETY: output channel o belongs to this task alone.
                let plane = unsafe { std::slice::from_raw_parts_mut(shared.at(o * oh * ow), oh * ow) };
                for tap in 0..16 {
                    let src = &columns[(o * 16 + tap) * hw..][..hw];
                    for iy in 0..h {
                        let Some(oy) = self.at(iy, tap / 4, oh) else { continue };
                        for ix in 0..wd {
                            if let Some(ox) = self.at(ix, tap % 4, ow) {
                                plane[oy * ow + ox] += src[iy * wd + ix];
                            }
                        }
                    }
                }
            });
        }
        FlexTensor::from_data(TensorData::new(out, [n, cout, oh, ow]))
    }

    /// Input gradient: per image, the output gradient gathered into columns [out * 16, h * w]
    /// (what each input pixel fed), then weights x columns.
    fn gather(&self, grad: &[f32], w: &[f32], [n, cin, h, wd]: [usize; 4], cout: usize) -> Vec<f32> {
        let (oh, ow, rows, hw) = (self.output(h), self.output(wd), cout * 16, h * wd);
        let mut out = vec![0.0f32; n * cin * hw];
        let mut columns = vec![0.0f32; rows * hw];
        for (i, gx) in out.chunks_exact_mut(cin * hw).enumerate() {
            let g = &grad[i * cout * oh * ow..][..cout * oh * ow];
            let shared = Shared(columns.as_mut_ptr());
            for_each_task(cout, |o| {
                // SAFETY: rows o * 16 .. o * 16 + 16 of the columns belong to this task alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(shared.at(o * 16 * hw), 16 * hw) };
                let plane = &g[o * oh * ow..][..oh * ow];
                for tap in 0..16 {
                    for iy in 0..h {
                        let row = &mut dst[tap * hw + iy * wd..][..wd];
                        let Some(oy) = self.at(iy, tap / 4, oh) else {
                            row.fill(0.0);
                            continue;
                        };
                        for (ix, d) in row.iter_mut().enumerate() {
                            *d = self.at(ix, tap % 4, ow).map_or(0.0, |ox| plane[oy * ow + ox]);
                        }
                    }
                }
            });
            let blocks = split(cin, 8);
            let (shared, columns) = (Shared(gx.as_mut_ptr()), &columns);
            for_each_task(blocks.len(), |b| {
                let (c0, c1) = blocks[b];
                // SAFETY: input channels c0..c1 belong to this task alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(shared.at(c0 * hw), (c1 - c0) * hw) };
                multiply(dst, [c1 - c0, hw, rows], false, &w[c0 * rows..], [rows, 1], columns, hw);
            });
        }
        out
    }
}

/// `0..len` cut into about two ranges per thread, none shorter than `least` (but the last).
fn split(len: usize, least: usize) -> Vec<(usize, usize)> {
    let size = len.div_ceil(2 * threads()).max(least);
    (0..len.div_ceil(size)).map(|b| (b * size, ((b + 1) * size).min(len))).collect()
}

#[derive(Debug)]
struct TransposeBackward;

#[derive(Clone, Debug)]
struct TransposeState {
    /// The op's weights, [in, out, 4, 4], contiguous.
    weight: FlexTensor,
    grid: Grid,
    input: [usize; 4],
}

impl Backward<Flex, 1> for TransposeBackward {
    type State = TransposeState;

    fn backward(self, ops: Ops<TransposeState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let TransposeState { weight, grid, input } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let cout = weight.layout().shape().dims::<4>()[1];
            let grad = grad.to_contiguous();
            FlexTensor::from_data(TensorData::new(grid.gather(slice(&grad), slice(&weight), input, cout), input))
        });
    }
}

/// Whether `x` lives on the CPU backend (autodiff or not). Checked first so that the GPU's
/// every convolution does not pay for the failed conversions below, which format messages.
fn on_cpu(x: &Tensor<4>) -> bool {
    crate::backbone::vgg::is_cpu(&x.device())
}

#[derive(Debug)]
struct ConvReluBackward;

#[derive(Clone, Debug)]
struct ConvState {
    /// The weights of the input gradient's convolution, [in, out, 3, 3].
    weight_t: FlexTensor,
    /// The op's output, after the ReLU: where it is 0 no gradient passes.
    output: FlexTensor,
}

impl Backward<Flex, 1> for ConvReluBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ConvState { weight_t, output } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let [cin, cout, _, _] = weight_t.layout().shape().dims::<4>();
            let [n, _, h, w] = grad.layout().shape().dims::<4>();
            let (grad, output) = (grad.to_contiguous(), output.to_contiguous());
            let g = conv(slice(&grad), Some(slice(&output)), [n, cout, h, w], &Taps::of(&weight_t), None, false);
            FlexTensor::from_data(TensorData::new(g, [n, cin, h, w]))
        });
    }
}

#[derive(Debug)]
struct PoolBackward;

#[derive(Clone, Debug)]
struct PoolState {
    input: [usize; 4],
    /// Per output element, which of its window's four inputs (row-major) was the maximum.
    winners: std::sync::Arc<[u8]>,
}

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let PoolState { input: [n, c, h, w], winners } = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = grad.to_contiguous();
            let g = slice(&grad);
            let (oh, ow) = (h / 2, w / 2);
            let mut out = vec![0.0f32; n * c * h * w];
            let shared = Shared(out.as_mut_ptr());
            for_each_task(n * c, |plane| {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let k = (plane * oh + oy) * ow + ox;
                        let win = winners[k] as usize;
                        let at = (plane * h + 2 * oy + win / 2) * w + 2 * ox + win % 2;
                        // SAFETY: plane `plane` of the output belongs to this task alone.
                        unsafe { *shared.at(at) = g[k] };
                    }
                }
            });
            FlexTensor::from_data(TensorData::new(out, [n, c, h, w]))
        });
    }
}

/// The pooled tensor and, when `keep_winners`, which input won each window.
fn pool(x: &FlexTensor, keep_winners: bool) -> (FlexTensor, Vec<u8>) {
    let [n, c, h, w] = x.layout().shape().dims::<4>();
    let x = x.to_contiguous();
    let x = slice(&x);
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0.0f32; n * c * oh * ow];
    let mut winners = vec![0u8; if keep_winners { out.len() } else { 0 }];
    let (shared, shared_w) = (Shared(out.as_mut_ptr()), Shared(winners.as_mut_ptr()));
    for_each_task(n * c, |plane| {
        for oy in 0..oh {
            let r0 = &x[(plane * h + 2 * oy) * w..][..w];
            let r1 = &x[(plane * h + 2 * oy + 1) * w..][..w];
            for ox in 0..ow {
                let window = [r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]];
                let mut best = 0;
                for k in 1..4 {
                    // A NaN wins, as in burn's pool: a poisoned input must reach the loss.
                    if window[k] > window[best] || window[k].is_nan() {
                        best = k;
                    }
                }
                let at = (plane * oh + oy) * ow + ox;
                // SAFETY: plane `plane` of the outputs belongs to this task alone.
                unsafe {
                    *shared.at(at) = window[best];
                    if keep_winners {
                        *shared_w.at(at) = best as u8;
                    }
                }
            }
        }
    });
    (FlexTensor::from_data(TensorData::new(out, [n, c, oh, ow])), winners)
}

fn forward(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> FlexTensor {
    let [cout, cin, _, _] = w.layout().shape().dims::<4>();
    let [n, _, h, wd] = x.layout().shape().dims::<4>();
    let (x, b) = (x.to_contiguous(), b.to_contiguous());
    let y = conv(slice(&x), None, [n, cin, h, wd], &Taps::of(w), Some(slice(&b)), true);
    FlexTensor::from_data(TensorData::new(y, [n, cout, h, wd]))
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// How the weights of one convolution are read, in the memory layout they are stored in:
/// element (o, c) of tap t (row-major 3x3) is at `base(t) + o * row + c * col`. The backbone
/// stores them [out, 3, 3, in] (`vgg::upload`), so that each row of a tap's matrix is dense.
struct Taps<'a> {
    w: &'a [f32],
    cout: usize,
    row: usize,
    col: usize,
    /// Strides of the kernel's row and column.
    ky: usize,
    kx: usize,
}

impl<'a> Taps<'a> {
    /// An [out, in, 3, 3] weight tensor, in any layout with positive strides.
    fn of(w: &'a FlexTensor) -> Self {
        let layout = w.layout();
        let [cout, ..] = layout.shape().dims::<4>();
        let s: Vec<usize> = layout.strides().iter().map(|&s| usize::try_from(s).expect("weights are stored with positive strides")).collect();
        Taps { w: &w.storage::<f32>()[layout.start_offset()..], cout, row: s[0], col: s[1], ky: s[2], kx: s[3] }
    }
    fn base(&self, tap: usize) -> usize {
        (tap / 3) * self.ky + (tap % 3) * self.kx
    }
}

/// Raw pointer to an output shared by parallel tasks, each of which writes its own disjoint
/// part.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}
impl<T> Shared<T> {
    /// The pointer `offset` elements in. A method, not the field: a closure that reads the
    /// field captures the bare raw pointer (Rust 2021 captures fields), which is not `Sync`;
    /// calling this captures the whole `Shared`.
    ///
    /// # Safety
    /// As [`pointer::add`]: `offset` must stay within the allocation.
    unsafe fn at(&self, offset: usize) -> *mut T {
        self.0.add(offset)
    }
}

/// The convolution of `x` ([n, cin, h, w], contiguous; multiplied by `mask > 0` where a mask
/// is given), plus `bias`, through a ReLU when `relu`.
fn conv(x: &[f32], mask: Option<&[f32]>, [n, cin, h, w]: [usize; 4], taps: &Taps, bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    let cout = taps.cout;
    let (pw, plane) = (w + 2, (h + 2) * (w + 2));
    // The last tap of the last spare column reads two elements past the last plane.
    let image = cin * plane + 2;
    let mut padded = vec![0.0f32; n * image];
    for (i, src) in x.chunks_exact(cin * h * w).enumerate() {
        let dst = &mut padded[i * image..];
        let m = mask.map(|m| &m[i * cin * h * w..(i + 1) * cin * h * w]);
        for c in 0..cin {
            for y in 0..h {
                let s = (c * h + y) * w;
                let d = &mut dst[c * plane + (y + 1) * pw + 1..][..w];
                match m {
                    None => d.copy_from_slice(&src[s..s + w]),
                    Some(m) => {
                        for ((d, &v), &keep) in d.iter_mut().zip(&src[s..s + w]).zip(&m[s..s + w]) {
                            *d = if keep <= 0.0 { 0.0 } else { v };
                        }
                    }
                }
            }
        }
    }

    let mut out = vec![0.0f32; n * cout * h * w];
    let rows = (STRIP_COLUMNS / pw).clamp(1, h);
    let strips = h.div_ceil(rows);
    // Small layers have few strips: split the output channels too, so every thread has work.
    let blocks = (2 * threads()).div_ceil(n * strips).min(cout.div_ceil(16)).max(1);
    let block = cout.div_ceil(blocks);
    let shared = Shared(out.as_mut_ptr());
    let padded = &padded;
    for_each_task(n * strips * blocks, |task| {
        let (i, rest) = (task / (strips * blocks), task % (strips * blocks));
        let (strip, blk) = (rest / blocks, rest % blocks);
        let (y0, y1) = (strip * rows, ((strip + 1) * rows).min(h));
        let (o0, o1) = (blk * block, ((blk + 1) * block).min(cout));
        if o0 >= o1 {
            return;
        }
        let (m, cols) = (o1 - o0, (y1 - y0) * pw);
        let mut acc = vec![0.0f32; m * cols];
        let strip_at = i * image + y0 * pw;
        let tap_offset = |tap: usize| (tap / 3) * pw + tap % 3;
        if cin <= FEW_CHANNELS {
            // Rows ordered (channel, tap), and the block's weights gathered in that order.
            let mut columns = vec![0.0f32; cin * 9 * cols];
            for (row, dst) in columns.chunks_exact_mut(cols).enumerate() {
                let at = strip_at + (row / 9) * plane + tap_offset(row % 9);
                dst.copy_from_slice(&padded[at..at + cols]);
            }
            let lhs: Vec<f32> = (o0..o1).flat_map(|o| (0..cin * 9).map(move |r| taps.w[taps.base(r % 9) + o * taps.row + (r / 9) * taps.col])).collect();
            multiply(&mut acc, [m, cols, cin * 9], false, &lhs, [cin * 9, 1], &columns, cols);
        } else {
            for tap in 0..9 {
                let lhs = &taps.w[taps.base(tap) + o0 * taps.row..];
                multiply(&mut acc, [m, cols, cin], tap > 0, lhs, [taps.row, taps.col], &padded[strip_at + tap_offset(tap)..], plane);
            }
        }
        for o in 0..m {
            let b = bias.map_or(0.0, |b| b[o0 + o]);
            for y in y0..y1 {
                let src = &acc[o * cols + (y - y0) * pw..][..w];
                // SAFETY: (image i, channel o0 + o, row y) belongs to this task alone.
                let dst = unsafe { std::slice::from_raw_parts_mut(shared.at(((i * cout + o0 + o) * h + y) * w), w) };
                for (d, &v) in dst.iter_mut().zip(src) {
                    let v = v + b;
                    // Not `max(0.0)`, which would turn a NaN into 0 and hide it from the loss.
                    *d = if relu && v < 0.0 { 0.0 } else { v };
                }
            }
        }
    });
    out
}

/// `dst` ([m, n], row-major) = `lhs` x `rhs`, or += where `accumulate`. `lhs` is read through
/// its (row, column) strides, `rhs` through its row stride with columns adjacent.
fn multiply(dst: &mut [f32], [m, n, k]: [usize; 3], accumulate: bool, lhs: &[f32], [lrs, lcs]: [usize; 2], rhs: &[f32], rrs: usize) {
    assert!(dst.len() >= m * n, "product does not fit its destination");
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lrs + (k - 1) * lcs, "left factor out of bounds");
    assert!(n == 0 || k == 0 || rhs.len() >= (k - 1) * rrs + n, "right factor out of bounds");
    // SAFETY: the asserts above bound every index gemm forms from these sizes and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lcs as isize,
            lrs as isize,
            rhs.as_ptr(),
            1,
            rrs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
fn threads() -> usize {
    rayon::current_num_threads()
}

#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
fn for_each_task(n: usize, f: impl Fn(usize) + Send + Sync) {
    use rayon::prelude::*;
    (0..n).into_par_iter().for_each(f);
}

#[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
fn threads() -> usize {
    1
}

#[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
fn for_each_task(n: usize, f: impl Fn(usize)) {
    (0..n).for_each(f);
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::{conv2d, conv_transpose2d, max_pool2d};
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
    use burn::tensor::{activation::relu, Device, Distribution, Tensor};

    use crate::util::imageops::read_native;

    fn random<const D: usize>(shape: [usize; D], dev: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), dev)
    }

    /// Largest difference between `ours` and `burns`, and the largest magnitude of `burns`,
    /// in value and in the gradient w.r.t. `x` of <op(x), r>.
    fn compare<F, G>(x: &Tensor<4>, r: &Tensor<4>, ours: F, burns: G) -> (f32, f32, f32, f32)
    where
        F: Fn(&Tensor<4>) -> Tensor<4>,
        G: Fn(&Tensor<4>) -> Tensor<4>,
    {
        let run = |op: &dyn Fn(&Tensor<4>) -> Tensor<4>| {
            let xa = x.clone().autodiff().require_grad();
            let y = op(&xa);
            let grads = (y.clone() * r.clone().autodiff()).sum().backward();
            (read_native(y.without_autodiff()).unwrap(), read_native(xa.grad(&grads).unwrap()).unwrap())
        };
        let ((y1, g1), (y2, g2)) = (run(&ours), run(&burns));
        let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let top = |a: &[f32]| a.iter().fold(0f32, |m, v| m.max(v.abs()));
        (diff(&y1, &y2), top(&y2), diff(&g1, &g2), top(&g2))
    }

    #[test]
    fn convolution_matches_burns_in_value_and_gradient() {
        let dev = Device::flex();
        // Odd and tiny planes, 3 input channels (conv1_1), channel counts that split unevenly
        // into blocks, a batch, and planes wider than one strip.
        for (n, c, cout, h, w) in [(1, 3, 64, 9, 7), (2, 5, 7, 1, 1), (1, 16, 40, 3, 5), (1, 8, 24, 40, 33), (3, 4, 18, 8, 8)] {
            let x = random([n, c, h, w], &dev);
            let wt = random([cout, c, 3, 3], &dev);
            let b = random([cout], &dev);
            let r = random([n, cout, h, w], &dev);
            let wt_t = Tensor::<4>::from_data(wt.clone().flip([2, 3]).swap_dims(0, 1).into_data(), &dev);
            // The weights in [out, in, 3, 3] order, and stored [out, 3, 3, in] (as the backbone
            // stores them) under an [out, in, 3, 3] view.
            let stored = |w: &Tensor<4>| Tensor::<4>::from_data(w.clone().permute([0, 2, 3, 1]).into_data(), &dev).permute([0, 3, 1, 2]);
            for (wk, wk_t) in [(wt.clone(), wt_t.clone()), (stored(&wt), stored(&wt_t))] {
                assert!(super::conv3x3_relu(&x, &wk, &wk_t, &b).is_some(), "flex tensors take deepface's kernel");
                let (dy, sy, dg, sg) = compare(
                    &x,
                    &r,
                    |x| super::conv3x3_relu(x, &wk, &wk_t, &b).expect("an autodiff flex tensor takes deepface's kernel"),
                    |x| relu(conv2d(x.clone(), wt.clone(), Some(b.clone()), ConvOptions::new([1, 1], [1, 1], [1, 1], 1))),
                );
                assert!(sy > 0.0 && sg > 0.0);
                assert!(dy <= 1e-5 * sy, "value off by {dy} (largest {sy}) for {n}x{c}->{cout} at {h}x{w}");
                assert!(dg <= 1e-5 * sg, "gradient off by {dg} (largest {sg}) for {n}x{c}->{cout} at {h}x{w}");
            }
        }
    }

    #[test]
    fn transposed_convolution_matches_burns_in_value_and_gradient() {
        let dev = Device::flex();
        // The generator's two kinds of layer (1x1 -> 4x4; doubling with stride 2), a batch,
        // odd sizes, and channel counts that split unevenly into blocks.
        for (n, c, cout, h, w, stride, padding) in [(1, 10, 24, 1, 1, 1, 0), (2, 9, 5, 4, 4, 2, 1), (1, 20, 3, 5, 7, 2, 1), (3, 3, 17, 2, 3, 2, 1)] {
            let x = random([n, c, h, w], &dev);
            let wt = random([c, cout, 4, 4], &dev);
            let (oh, ow) = ((h - 1) * stride + 4 - 2 * padding, (w - 1) * stride + 4 - 2 * padding);
            let r = random([n, cout, oh, ow], &dev);
            assert!(super::conv_transpose4x4(&x, &wt, stride, padding).is_some(), "flex tensors take deepface's kernel");
            let (dy, sy, dg, sg) = compare(
                &x,
                &r,
                |x| super::conv_transpose4x4(x, &wt, stride, padding).expect("an autodiff flex tensor takes deepface's kernel"),
                |x| conv_transpose2d(x.clone(), wt.clone(), None, ConvTransposeOptions::new([stride; 2], [padding; 2], [0, 0], [1, 1], 1)),
            );
            assert!(sy > 0.0 && sg > 0.0);
            assert!(dy <= 1e-5 * sy, "value off by {dy} (largest {sy}) for {n}x{c}->{cout} at {h}x{w}");
            assert!(dg <= 1e-5 * sg, "gradient off by {dg} (largest {sg}) for {n}x{c}->{cout} at {h}x{w}");
        }
        // A NaN input pixel reaches the 4x4 patch it feeds in every output channel.
        let mut v = vec![0.5f32; 2 * 3 * 3];
        v[4] = f32::NAN;
        let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [1, 2, 3, 3]), &dev);
        let y = read_native(super::conv_transpose4x4(&x, &random([2, 3, 4, 4], &dev), 2, 1).unwrap()).unwrap();
        assert_eq!(y.iter().filter(|v| v.is_nan()).count(), 3 * 16);
    }

    #[test]
    fn a_nan_input_reaches_the_output_of_both_layers() {
        let dev = Device::flex();
        let mut v = vec![0.5f32; 2 * 4 * 4];
        v[5] = f32::NAN;
        let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(v, [1, 2, 4, 4]), &dev);
        let w = random([3, 2, 3, 3], &dev);
        let b = random([3], &dev);
        let conv = read_native(super::conv3x3_relu(&x, &w, &w.clone().flip([2, 3]).swap_dims(0, 1), &b).unwrap()).unwrap();
        assert!(conv.iter().filter(|v| v.is_nan()).count() >= 3 * 9, "a NaN pixel poisons its 3x3 neighbourhood in every channel");
        let pooled = read_native(super::max_pool2x2(&x).unwrap()).unwrap();
        assert_eq!(pooled.iter().filter(|v| v.is_nan()).count(), 1, "{pooled:?}");
    }

    #[test]
    fn max_pool_matches_burns_in_value_and_gradient() {
        let dev = Device::flex();
        for (n, c, h, w) in [(1, 3, 8, 8), (2, 5, 7, 9), (1, 64, 2, 3), (1, 2, 2, 5)] {
            let x = random([n, c, h, w], &dev);
            let r = random([n, c, h / 2, w / 2], &dev);
            assert!(super::max_pool2x2(&x).is_some(), "flex tensors take deepface's kernel");
            let (dy, sy, dg, sg) = compare(
                &x,
                &r,
                |x| super::max_pool2x2(x).expect("an autodiff flex tensor takes deepface's kernel"),
                |x| max_pool2d(x.clone(), MaxPoolOptions::new([2, 2])),
            );
            if h >= 2 {
                assert!(sy > 0.0 && sg > 0.0);
            }
            assert_eq!((dy, dg), (0.0, 0.0), "pool differs for {n}x{c} at {h}x{w} (largest value {sy}, gradient {sg})");
        }
    }
}
