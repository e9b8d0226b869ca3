//! A register-tiled 3x3 convolution (stride 1, zero padding 1) for the GPU backend.
//!
//! burn's direct kernel gives each invocation one pixel and four output channels and reads
//! five vectors for every 16 multiply-adds; on SwiftShader, where every lane's load is a
//! gather, that kernel was about 90% of an inversion step. Here an invocation computes a
//! strip of `TX` pixels of one row for `TC` output channels, so a 3x3 window costs
//! 3 x (TX + 2) input loads and 9 x TC weight loads for 9 x TX x TC multiply-adds.
//!
//! The kernel is registered with burn's fusion backend as a custom operation: fusion queues it
//! like any other op, and the elementwise work around it still fuses.

use burn::tensor::Tensor as BurnTensor;
use burn_cubecl::fusion::FusionCubeRuntime;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{Cube, CubeBackend};
use burn_fusion::stream::{Operation, StreamId};
use burn_fusion::{ExecutionError, FusionRuntime};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

/// Pixels of one row per invocation.
const TX: usize = 16;
/// Output channels per invocation, where the channel count allows.
const TC: usize = 8;

#[cube(launch_unchecked)]
fn conv3x3_kernel(
    input: &Tensor<f32>,
    weight: &Tensor<f32>,
    bias: ComptimeOption<&[f32]>,
    output: &mut Tensor<f32>,
    #[comptime] tx: usize,
    #[comptime] tc: usize,
) {
    let cin = input.shape(1);
    let h = input.shape(2);
    let w = input.shape(3);
    let cout = output.shape(1);

    // Neighbouring invocations take neighbouring strips of one row and the same channels, so
    // a SIMD group's weight reads coincide.
    let strips = w.div_ceil(tx);
    let strip = ABSOLUTE_POS % strips;
    let rest = ABSOLUTE_POS / strips;
    let y = rest % h;
    let rest = rest / h;
    let blocks = cout / tc;
    let oc0 = (rest % blocks) * tc;
    let image = rest / blocks;
    if image >= input.shape(0) {
        terminate!();
    }
    let x0 = strip * tx;

    let sc = input.stride(1);
    let sy = input.stride(2);
    let sx = input.stride(3);
    let wo = weight.stride(0);
    let wi = weight.stride(1);
    let wy = weight.stride(2);
    let wx = weight.stride(3);

    // Offsets and zero-padding masks of the (TX + 2)-wide window, per kernel row: out-of-image
    // reads go to a valid address and are multiplied by 0, which keeps every lane on one path.
    let width = comptime![tx + 2];
    let mut offs = Array::<usize>::new(comptime![3 * (tx + 2)]);
    let mut mask = Array::<f32>::new(comptime![3 * (tx + 2)]);
    #[unroll]
    for ky in 0..3usize {
        let yy = y + ky;
        let row_in = yy >= 1 && yy <= h;
        let ry = select(row_in, yy - 1, 0usize);
        #[unroll]
        for j in 0..width {
            let xx = x0 + j;
            let inside = row_in && xx >= 1 && xx <= w;
            let rx = select(inside, xx - 1, 0usize);
            offs[ky * width + j] = ry * sy + rx * sx;
            mask[ky * width + j] = select(inside, f32::new(1.0), f32::new(0.0));
        }
    }

    let mut acc = Array::<f32>::new(comptime![tx * tc]);
    #[unroll]
    for i in 0..comptime![tx * tc] {
        acc[i] = f32::new(0.0);
    }
    let mut win = Array::<f32>::new(width);
    let mut wv = Array::<f32>::new(tc);

    for ci in 0..cin {
        let in_base = image * input.stride(0) + ci * sc;
        let w_base = oc0 * wo + ci * wi;
        #[unroll]
        for ky in 0..3usize {
            #[unroll]
            for j in 0..width {
                win[j] = input[in_base + offs[ky * width + j]] * mask[ky * width + j];
            }
            #[unroll]
            for kx in 0..3usize {
                let tap = w_base + ky * wy + kx * wx;
                #[unroll]
                for c in 0..tc {
                    wv[c] = weight[tap + c * wo];
                }
                #[unroll]
                for p in 0..tx {
                    #[unroll]
                    for c in 0..tc {
                        acc[p * tc + c] += win[p + kx] * wv[c];
                    }
                }
            }
        }
    }

    let so_n = output.stride(0);
    let so_c = output.stride(1);
    let so_y = output.stride(2);
    let so_x = output.stride(3);
    #[unroll]
    for c in 0..tc {
        let oc = oc0 + c;
        let b: ComptimeOption<f32> = bias.map(|bias| bias[oc]);
        let b = b.unwrap_or_else(|| f32::new(0.0));
        #[unroll]
        for p in 0..tx {
            let xx = x0 + p;
            if xx < w {
                let at = image * so_n + oc * so_c + y * so_y + xx * so_x;
                output[at] = acc[p * tc + c] + b;
            }
        }
    }
}

/// Output channels per invocation for `cout` channels: `TC` where it divides them, else all of
/// a small count (the input gradient of conv1_1 has 3), else one.
fn channel_tile(cout: usize) -> usize {
    if cout.is_multiple_of(TC) {
        TC
    } else if cout <= TC {
        cout
    } else {
        1
    }
}

fn launch(x: CubeTensor, w: CubeTensor, b: Option<CubeTensor>) -> CubeTensor {
    let shape = x.meta.shape();
    let (n, h, wd) = (shape[0], shape[2], shape[3]);
    let cout = w.meta.shape()[0];
    let out = empty_device_dtype(x.client.clone(), x.device.clone(), [n, cout, h, wd].into(), x.dtype);
    let tc = channel_tile(cout);
    // A strip no wider than the row: conv4's 8-pixel rows at 64 px would waste half of 16.
    let tx = TX.min(wd.next_power_of_two());
    let units = n * (cout / tc) * h * wd.div_ceil(tx);
    let client = x.client.clone();
    // cubecl spreads the groups over a 2D or 3D grid where one dimension would pass the device's
    // limit (65535 on WebGPU); the kernel stops invocations past the last image.
    let cube_dim = CubeDim::new(&client, units);
    let cube_count = calculate_cube_count_elemwise(&client, units, cube_dim);
    // SAFETY: every index the kernel forms is inside its tensor: window reads are clamped to
    // the image, weight reads stay below `cout` because `tc` divides it, writes are guarded.
    unsafe {
        conv3x3_kernel::launch_unchecked(
            &client,
            cube_count,
            cube_dim,
            x.into_tensor_arg(),
            w.into_tensor_arg(),
            b.map(|b| b.into_buffer_arg()).into(),
            out.clone().into_tensor_arg(),
            tx,
            tc,
        )
    };
    out
}

#[derive(Debug)]
struct Conv3x3Op {
    desc: CustomOpIr,
}

impl Operation<FusionCubeRuntime> for Conv3x3Op {
    fn execute(
        &self,
        handles: &mut HandleContainer<<FusionCubeRuntime as FusionRuntime>::FusionHandle>,
    ) -> Result<(), ExecutionError> {
        let inputs = &self.desc.inputs;
        let x = handles.get_float_tensor::<CubeBackend>(&inputs[0]);
        let w = handles.get_float_tensor::<CubeBackend>(&inputs[1]);
        let b = inputs.get(2).map(|b| handles.get_float_tensor::<CubeBackend>(b));
        let out = launch(x, w, b);
        handles.register_float_tensor::<CubeBackend>(&self.desc.outputs[0].id, out);
        Ok(())
    }
}

/// 3x3 convolution (stride 1, zero padding 1) of tensors on the GPU backend, f32.
pub fn conv3x3(x: BurnTensor<4>, w: BurnTensor<4>, b: Option<BurnTensor<1>>) -> BurnTensor<4> {
    let [n, _, h, wd] = x.dims();
    let cout = w.dims()[0];
    let on_gpu = "the tiled convolution's tensors are on the GPU backend";
    let xp = x.try_into_primitive::<Cube>().expect(on_gpu);
    let wp = w.try_into_primitive::<Cube>().expect(on_gpu);
    let bp = b.map(|b| b.try_into_primitive::<Cube>().expect(on_gpu));
    let client = xp.client.clone();
    let out = TensorIr::uninit(client.create_empty_handle(), [n, cout, h, wd].into(), xp.dtype);
    let mut inputs = vec![xp.into_ir(), wp.into_ir()];
    inputs.extend(bp.map(|b| b.into_ir()));
    let desc = CustomOpIr::new("deepface_conv3x3", &inputs, &[out]);
    let mut outs = client.register(StreamId::current(), OperationIr::Custom(desc.clone()), Conv3x3Op { desc });
    BurnTensor::from_primitive::<Cube>(outs.remove(0))
}
