//! The deepface command-line tool (native, CPU backend). One file per pipeline stage's
//! commands; `common` holds what they share.

mod backbone;
mod common;
mod data;
mod fit;
mod make;
mod quality;

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "deepface", version, about = "Face generation and editing by VGG16 feature inversion")]
struct Cli {
    /// Folder of the backbone and the default model bundle (default: $DEEPFACE_MODEL_DIR, else
    /// the model/ folder of the source tree this binary was built from).
    #[arg(long, global = true)]
    model_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert VGG16 conv weights (ONNX, PyTorch .pth, safetensors) into deepface's backbone file.
    ImportVgg(backbone::ImportVgg),
    /// Rebuild a photo from its own VGG16 activations, starting from noise.
    Invert(backbone::Invert),
    /// Time inversion steps (forward + backward + Adam) at several sizes.
    Bench(backbone::Bench),
    /// Detect faces in a photo and save square crops (largest first).
    CropFaces(data::CropFaces),
    /// Find faces with the SeetaFace detector and print their boxes (--json for scripts).
    Detect(data::Detect),
    /// Generate synthetic 64x64 faces with the DCGAN of PyPI gan-face-generate (see scripts/fetch_models.sh).
    Synth(data::Synth),
    /// Pseudo-label every face in DIR/img_align_celeba with the packaged age and gender models;
    /// writes CelebA-format label files, a CSV, confidences and an 80/10/10 split.
    Label(data::Label),
    /// Attribute counts (bar chart PNG) and a text summary of a labelled data set.
    DatasetCard(data::DatasetCard),
    /// Fit the attribute classifier and both conditional models on a labelled data set and
    /// write one model bundle.
    Fit(fit::Fit),
    /// t-SNE map of one layer's activations over test images, coloured by an attribute (paper's Fig. 2).
    Tsne(fit::Tsne),
    /// Add the face generator and latent attribute directions to a model bundle.
    AddPrior(fit::AddPrior),
    /// Say which attributes the face in a photo has (the largest face found; else the centre).
    Classify(make::Classify),
    /// Generate a face with the requested attributes, e.g. --attrs "Male,Smiling=0.5,-Senior".
    Generate(make::Generate),
    /// Edit the largest face in a photo toward attributes (feature interpolation along the
    /// linear model's directions); writes the whole photo with the face edited.
    Alter(make::Alter),
    /// The paper's baseline: gradient ascent on the classifier's attribute scores from the mean face.
    Visualize(make::Visualize),
    /// Generate faces for several attribute sets and seeds with both models; report agreement
    /// with the requested attributes and distances; write a contact sheet.
    Evaluate(make::Evaluate),
    /// Write an image set and manifest for the independent scoreboard (scripts/quality.sh).
    QualitySet(quality::QualitySet),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(dir) = &cli.model_dir {
        // Read by `deepface::util::paths`, which every default model path goes through.
        std::env::set_var(deepface::util::paths::MODEL_DIR_VAR, dir);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Command) -> deepface::Result<()> {
    let device = Device::flex();
    match cmd {
        Command::ImportVgg(c) => c.run(&device),
        Command::Invert(c) => c.run(&device),
        Command::Bench(c) => c.run(&device),
        Command::CropFaces(c) => c.run(&device),
        Command::Detect(c) => c.run(&device),
        Command::Synth(c) => c.run(&device),
        Command::Label(c) => c.run(&device),
        Command::DatasetCard(c) => c.run(&device),
        Command::Fit(c) => c.run(&device),
        Command::Tsne(c) => c.run(&device),
        Command::AddPrior(c) => c.run(&device),
        Command::Classify(c) => c.run(&device),
        Command::Generate(c) => c.run(&device),
        Command::Alter(c) => c.run(&device),
        Command::Visualize(c) => c.run(&device),
        Command::Evaluate(c) => c.run(&device),
        Command::QualitySet(c) => c.run(&device),
    }
}
