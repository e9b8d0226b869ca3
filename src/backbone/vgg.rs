//! The VGG16 convolutional stack (13 conv 3x3 + ReLU, 5 max-pools), truncated at the deepest
//! layer a caller asks for.

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::module::{conv2d, max_pool2d, max_pool2d_with_indices, max_pool2d_with_indices_backward};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::backbone::weights::ConvWeights;
use crate::{Error, Result};

/// The network's layers in forward order; a conv layer's output is taken after its ReLU.
pub const LAYER_NAMES: [&str; 18] = [
    "conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2", "conv3_1", "conv3_2",
    "conv3_3", "pool3", "conv4_1", "conv4_2", "conv4_3", "pool4", "conv5_1", "conv5_2",
    "conv5_3", "pool5",
];

/// (input channels, output channels) of the 13 convolutions, in order. Importers identify
/// the layers of a weights file by this sequence, never by tensor names.
pub const CONV_CHANNELS: [(usize, usize); 13] = [
    (3, 64), (64, 64),
    (64, 128), (128, 128),
    (128, 256), (256, 256), (256, 256),
    (256, 512), (512, 512), (512, 512),
    (512, 512), (512, 512), (512, 512),
];

/// Names of the 13 conv layers in order.
pub const CONV_NAMES: [&str; 13] = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
    "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
];

/// Mean pixel of the ImageNet VGG16 (Caffe/Keras) weights, in RGB order, 0..255.
pub const MEAN_RGB: [f32; 3] = [123.68, 116.779, 103.939];

/// One tap point of the network: an index into [`LAYER_NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Layer(usize);

impl Layer {
    pub fn name(self) -> &'static str {
        LAYER_NAMES[self.0]
    }
    pub fn index(self) -> usize {
        self.0
    }
    pub fn is_pool(self) -> bool {
        self.name().starts_with("pool")
    }
    /// Channels of this layer's activations.
    pub fn channels(self) -> usize {
        let convs_up_to = LAYER_NAMES[..=self.0].iter().filter(|n| n.starts_with("conv")).count();
        CONV_CHANNELS[convs_up_to - 1].1
    }
    /// How many times the input has been halved by pooling at this layer's output.
    pub fn pools_before(self) -> usize {
        LAYER_NAMES[..=self.0].iter().filter(|n| n.starts_with("pool")).count()
    }
    /// [C, H, W] of this layer's activations for a square `size` px input.
    pub fn shape(self, size: usize) -> [usize; 3] {
        let s = size >> self.pools_before();
        [self.channels(), s, s]
    }
    /// Multiply-adds x 2 of the convolutions a forward pass runs to reach this layer for a
    /// square `size` px input (pools and ReLUs are a rounding error next to them).
    pub fn forward_flops(self, size: usize) -> f64 {
        let mut conv = 0;
        let mut flops = 0.0;
        for (i, name) in LAYER_NAMES[..=self.0].iter().enumerate() {
            if name.starts_with("conv") {
                let (cin, cout) = CONV_CHANNELS[conv];
                let s = (size >> Layer(i).pools_before()) as f64;
                flops += 2.0 * 9.0 * (cin * cout) as f64 * s * s;
                conv += 1;
            }
        }
        flops
    }
    pub fn all() -> impl Iterator<Item = Layer> {
        (0..LAYER_NAMES.len()).map(Layer)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        LAYER_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(Layer)
            .ok_or_else(|| Error::invalid("layer", format!("unknown layer `{s}`; valid layers: {}", LAYER_NAMES.join(", "))))
    }
}

/// Parses a comma-separated list such as `conv3_1,conv4_1`.
pub fn parse_layers(list: &str) -> Result<Vec<Layer>> {
    let layers: Vec<Layer> = list.split(',').filter(|s| !s.trim().is_empty()).map(str::parse).collect::<Result<_>>()?;
    if layers.is_empty() {
        return Err(Error::invalid("layer list", "no layer named; e.g. conv3_1"));
    }
    Ok(layers)
}

/// VGG16 conv stack. The weights are plain (non-autodiff) tensors: when the input image
/// carries autodiff they act as constants, so inversion differentiates only w.r.t. pixels.
#[derive(Module, Debug)]
pub struct Vgg16 {
    weights: Vec<Tensor<4>>,
    /// Each convolution's weights flipped in space with input and output swapped: convolving
    /// an output gradient with them gives the input gradient (stride 1, padding 1). See
    /// [`Vgg16::input_grad`] on the GPU and `cpu_kernels`' backward pass on the CPU, each in
    /// its backend's layout (see [`upload`]); 40 MB to conv5_1.
    weights_t: Vec<Tensor<4>>,
    biases: Vec<Tensor<1>>,
    mean: Tensor<4>,
}

/// burn's CPU backend; the GPU backends share the other layout and kernel choices.
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// [out, in, 3, 3] weights onto `device` in the layout its convolution reads, as the
/// [out, in, 3, 3] view of that memory.
fn upload(w: &[f32], cout: usize, cin: usize, device: &Device) -> Tensor<4> {
    if is_cpu(device) {
        // deepface's CPU kernel (`cpu_kernels`) multiplies one tap's [out, in] matrix at a time:
        // store [out, 3, 3, in], so that each row of it is dense. Read 9 apart (the [out, in,
        // 3, 3] order), the deep layers' 9 MB matrices cost gemm more to gather than to
        // multiply at 8x8 and 4x4 px. With this layout, and the flipped weights stored the same
        // way for the backward pass, a 64 px step (`deepface bench`, three runs each) down to
        // conv5_1 went from 65-72 to 40-44 ms natively, down to conv4_1 from 35-37 to 28-29 ms;
        // the images are the same to the bit.
        Tensor::from_data(TensorData::new(channels_in_last(w, cout, cin), [cout, 3, 3, cin]), device).permute([0, 3, 1, 2])
    } else {
        // The GPU kernel (`gpu_conv`) reads one tap's output channels side by side: store
        // [in, 3, 3, out] and hand it the [out, in, 3, 3] view of that memory.
        Tensor::from_data(TensorData::new(channels_out_last(w, cout, cin), [cin, 3, 3, cout]), device).permute([3, 0, 1, 2])
    }
}

impl Vgg16 {
    /// Uploads host weights (the backbone file's BGR-input convention) to `device`.
    pub fn new(conv: &ConvWeights, device: &Device) -> Self {
        let mut weights = Vec::with_capacity(13);
        let mut weights_t = Vec::with_capacity(13);
        let mut biases = Vec::with_capacity(13);
        for (i, layer) in conv.layers.iter().enumerate() {
            let (cin, cout) = CONV_CHANNELS[i];
            let mut w = layer.weight.clone();
            if i == 0 {
                // The weights expect BGR; callers give RGB. Reversing conv1_1's input channels
                // once is exact and saves a channel shuffle on every forward pass.
                w = reverse_input_channels(&w, cout, cin);
            }
            weights.push(upload(&w, cout, cin, device));
            // Flipped, then laid out: two passes over the weights. One fused pass was slower
            // (157 against 92 ms for the 13 layers natively), its writes scattered in both.
            weights_t.push(upload(&flip_transpose(&w, cout, cin), cin, cout, device));
            biases.push(Tensor::from_data(TensorData::new(layer.bias.clone(), [cout]), device));
        }
        let mean = Tensor::from_data(TensorData::new(MEAN_RGB.to_vec(), [1, 3, 1, 1]), device);
        Vgg16 { weights, weights_t, biases, mean }
    }

    /// Whether this network's weights reach `layer` (a trimmed backbone stops early).
    pub fn reaches(&self, layer: Layer) -> bool {
        LAYER_NAMES[..=layer.0].iter().filter(|n| n.starts_with("conv")).count() <= self.weights.len()
    }

    /// The deepest layer these weights compute.
    pub fn deepest(&self) -> Layer {
        Layer(LAYER_NAMES.iter().position(|n| *n == CONV_NAMES[self.weights.len() - 1]).expect("conv names are layer names"))
    }

    /// Activations of `layers` (in the order asked) for `rgb`, a [N, 3, H, W] batch of RGB
    /// images in [0, 1]. Nothing past the deepest requested layer is computed.
    pub fn forward(&self, rgb: Tensor<4>, layers: &[Layer]) -> Vec<Tensor<4>> {
        let (outs, _) = self.run(rgb, layers, false);
        layers.iter().map(|l| outs[l.0].clone().expect("every requested layer was computed")).collect()
    }

    /// The forward pass to the deepest of `layers`, keeping what [`Vgg16::input_grad`] needs.
    pub fn trace(&self, rgb: Tensor<4>, layers: &[Layer]) -> Trace {
        let (outs, pool_indices) = self.run(rgb, layers, true);
        Trace { outs: outs.into_iter().map(|o| o.expect("a trace keeps every layer")).collect(), pool_indices }
    }

    /// The forward pass; keeps the requested layers' outputs, or with `trace` all of them and
    /// where each pool's maxima were (a plain forward pass lets the others go as soon as the
    /// next layer is computed).
    #[allow(clippy::type_complexity)]
    fn run(&self, rgb: Tensor<4>, layers: &[Layer], trace: bool) -> (Vec<Option<Tensor<4>>>, Vec<Option<Tensor<4, Int>>>) {
        let Some(deepest) = layers.iter().map(|l| l.0).max() else { return (Vec::new(), Vec::new()) };
        // Mean subtraction cannot be folded into conv1_1's bias: zero padding happens in
        // mean-subtracted space, so the border would differ.
        let mut x = rgb.mul_scalar(255.0) - self.mean.clone();
        let mut outs = Vec::with_capacity(deepest + 1);
        let mut pool_indices = Vec::with_capacity(deepest + 1);
        let mut conv = 0;
        for (i, name) in LAYER_NAMES.iter().enumerate().take(deepest + 1) {
            let mut indices = None;
            x = if name.starts_with("conv") {
                let (w, b) = (&self.weights[conv], &self.biases[conv]);
                conv += 1;
                // The CPU backend's own layer where it applies (`cpu_kernels`), burn's otherwise.
                crate::backbone::cpu_kernels::conv3x3_relu(&x, w, &self.weights_t[conv - 1], b)
                    .unwrap_or_else(|| burn::tensor::activation::relu(conv3x3(x, w.clone(), Some(b.clone()))))
            } else if trace {
                let (y, at) = max_pool2d_with_indices(x, MaxPoolOptions::new([2, 2]));
                indices = Some(at);
                y
            } else {
                crate::backbone::cpu_kernels::max_pool2x2(&x).unwrap_or_else(|| max_pool2d(x, MaxPoolOptions::new([2, 2])))
            };
            outs.push((trace || layers.iter().any(|l| l.0 == i)).then(|| x.clone()));
            pool_indices.push(indices);
        }
        (outs, pool_indices)
    }

    /// Gradient w.r.t. the RGB input of sum_l <grads_l, activations at layers_l>, from a
    /// [`Vgg16::trace`] of that input; what burn's autodiff computes. Hand-written because a
    /// convolution's input gradient is then the forward kernel on flipped weights: on WebGPU
    /// burn's own backward runs a transposed-convolution kernel that took twice the forward
    /// pass's time (SwiftShader, conv3_1 at 64 px: 2.8 s against 1.3 s; the whole step went
    /// from 4.1 to 3.2 s by hand).
    pub fn input_grad(&self, trace: &Trace, layers: &[Layer], grads: Vec<Tensor<4>>) -> Tensor<4> {
        let outs = &trace.outs;
        let mut conv = LAYER_NAMES[..outs.len()].iter().filter(|n| n.starts_with("conv")).count();
        let mut grads: Vec<(Layer, Tensor<4>)> = layers.iter().copied().zip(grads).collect();
        let mut g: Option<Tensor<4>> = None;
        for i in (0..outs.len()).rev() {
            for (_, gl) in grads.extract_if(.., |(l, _)| l.0 == i) {
                g = Some(match g {
                    Some(g) => g + gl,
                    None => gl,
                });
            }
            let Some(gi) = g.take() else { continue };
            g = Some(match &trace.pool_indices[i] {
                None => {
                    conv -= 1;
                    let gi = gi.mask_fill(outs[i].clone().lower_equal_elem(0.0), 0.0);
                    conv3x3(gi, self.weights_t[conv].clone(), None)
                }
                Some(at) => max_pool2d_with_indices_backward(outs[i - 1].clone(), [2, 2], [2, 2], [0, 0], [1, 1], false, gi, at.clone()),
            });
        }
        g.expect("the deepest traced layer has a gradient").mul_scalar(255.0)
    }
}

/// Every layer's output of one forward pass, and where each pool took its maxima from.
pub struct Trace {
    outs: Vec<Tensor<4>>,
    pool_indices: Vec<Option<Tensor<4, Int>>>,
}

impl Trace {
    /// The activations at `layer`, which the traced pass reached.
    pub fn at(&self, layer: Layer) -> Tensor<4> {
        self.outs[layer.0].clone()
    }
}

/// 3x3 convolution, stride 1, zero padding 1: the GPU backend's own kernel, or burn's (the
/// CPU backend's forward pass goes through [`crate::backbone::cpu_kernels`] before it gets here).
fn conv3x3(x: Tensor<4>, w: Tensor<4>, b: Option<Tensor<1>>) -> Tensor<4> {
    #[cfg(feature = "webgpu")]
    if !is_cpu(&x.device()) {
        return crate::backbone::gpu_conv::conv3x3(x, w, b);
    }
    conv2d(x, w, b, ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
}

/// [out, in, 3, 3] weights reordered to [in, 3, 3, out].
fn channels_out_last(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    reorder(w, cout, cin, |o, c, k| (c * 9 + k) * cout + o)
}

/// [out, in, 3, 3] weights reordered to [out, 3, 3, in].
fn channels_in_last(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    reorder(w, cout, cin, |o, c, k| (o * 9 + k) * cin + c)
}

/// [out, in, 3, 3] weights with element (o, c, k) moved to `to(o, c, k)`.
fn reorder(w: &[f32], cout: usize, cin: usize, to: impl Fn(usize, usize, usize) -> usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for o in 0..cout {
        for c in 0..cin {
            for k in 0..9 {
                out[to(o, c, k)] = w[(o * cin + c) * 9 + k];
            }
        }
    }
    out
}

/// [out, in, 3, 3] weights as [in, out, 3, 3], each 3x3 kernel turned by 180 degrees.
fn flip_transpose(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    reorder(w, cout, cin, |o, c, k| (c * cout + o) * 9 + 8 - k)
}

fn reverse_input_channels(w: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    reorder(w, cout, cin, |o, c, k| (o * cin + cin - 1 - c) * 9 + k)
}

#[cfg(test)]
mod flop_tests {
    use super::Layer;

    #[test]
    fn vgg16_conv_flops_match_the_published_count() {
        // VGG16's 13 convolutions at 224 px: 15.35 G multiply-adds (the often quoted 15.5 G
        // includes the fully connected layers).
        let all: Layer = "conv5_3".parse().unwrap();
        let g = all.forward_flops(224) / 2e9;
        assert!((15.3..15.4).contains(&g), "{g} GMAC");
        let c11: Layer = "conv1_1".parse().unwrap();
        assert_eq!(c11.forward_flops(224), 2.0 * 9.0 * 3.0 * 64.0 * 224.0 * 224.0);
    }
}

#[cfg(test)]
mod layout_tests {
    use burn::tensor::{Device, Tensor, TensorData};

    #[test]
    fn flipped_transposed_weights_are_burns_flip_and_swap() {
        let (cout, cin) = (4, 5);
        let w: Vec<f32> = (0..cout * cin * 9).map(|i| i as f32).collect();
        let dev = Device::flex();
        let burns = Tensor::<4>::from_data(TensorData::new(w.clone(), [cout, cin, 3, 3]), &dev).flip([2, 3]).swap_dims(0, 1);
        assert_eq!(crate::util::imageops::read_native(burns).unwrap(), super::flip_transpose(&w, cout, cin));
    }

    #[test]
    fn weights_of_either_layout_read_back_as_the_original_through_the_permuted_view() {
        let (cout, cin) = (4, 5);
        let w: Vec<f32> = (0..cout * cin * 9).map(|i| i as f32).collect();
        let dev = Device::flex();
        let gpu = Tensor::<4>::from_data(TensorData::new(super::channels_out_last(&w, cout, cin), [cin, 3, 3, cout]), &dev).permute([3, 0, 1, 2]);
        // What `upload` hands the CPU backend.
        let cpu = super::upload(&w, cout, cin, &dev);
        for view in [gpu, cpu] {
            assert_eq!(view.dims(), [cout, cin, 3, 3]);
            assert_eq!(crate::util::imageops::read_native(view).unwrap(), w);
        }
    }
}
