//! The `ferrograd` command: train, evaluate and run the tutorial's networks on MNIST, a GPT on
//! text, a pretrained sentence Transformer (embeddings, fine-tuning), and spoken digits from
//! raw audio.

mod classify;
mod common;
mod config;
mod distributed;
mod embed;
mod evaluate;
mod federated;
mod finetune;
mod finetune_args;
mod gpt;
mod gpt_args;
mod gpt_sample;
mod predict;
mod recommend;
mod speech;
mod train;
mod train_args;

use clap::{Parser, Subcommand};
use ferrograd_train::TrainError;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferrograd",
    version,
    about = "Train, evaluate and run neural networks written with ferrograd"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on MNIST (the default command, with the MLP and its defaults)
    Train(Box<train_args::TrainArgs>),
    /// Evaluate saved weights on the MNIST test set: accuracy, per-class accuracy, confusion matrix
    Eval(evaluate::EvalArgs),
    /// Classify a PNG image with saved weights: the top three classes
    Predict(predict::PredictArgs),
    /// A character-level GPT: train on a text corpus, sample from it
    #[command(subcommand)]
    Gpt(gpt_args::GptCommand),
    /// Sentence embeddings from a pretrained sentence Transformer (all-MiniLM-L6-v2)
    Embed(embed::EmbedArgs),
    /// Cosine similarity of two sentences' embeddings
    Similarity(embed::SimilarityArgs),
    /// Fine-tune a pretrained sentence Transformer as a text classifier (full, frozen, or LoRA)
    Finetune(Box<finetune_args::FinetuneArgs>),
    /// Classify texts with weights written by `finetune`
    Classify(classify::ClassifyArgs),
    /// Spoken digits from raw audio: train, evaluate, predict, adapt to a new speaker
    #[command(subcommand)]
    Speech(speech::SpeechCommand),
    /// Recommendation from user-item ratings (MovieLens): train MF, SVD++ or NeuMF; top items
    /// for a user; similar items
    #[command(subcommand)]
    Recommend(recommend::RecommendCommand),
    /// Federated averaging (McMahan et al. 2017) over MNIST split among clients: the paper's
    /// CNN or 2NN, IID or non-IID, FedAvg, FedSGD or FedProx; in one process or over MPI ranks
    Federated(Box<federated::FederatedArgs>),
}

fn main() -> ExitCode {
    // training allocates the same large buffers every step: keep them (see the function)
    ferrograd_tensor::cpu::allocator::keep_freed_memory();
    let cli = Cli::parse();
    let common = match &cli.command {
        Some(Command::Train(a)) => Some(&a.common),
        Some(Command::Gpt(gpt_args::GptCommand::Train(a))) => Some(&a.common),
        Some(Command::Finetune(a)) => Some(&a.common),
        Some(Command::Speech(speech::SpeechCommand::Train(a))) => Some(&a.common),
        Some(Command::Speech(speech::SpeechCommand::Adapt(a))) => Some(&a.common),
        Some(Command::Recommend(recommend::RecommendCommand::Train(a))) => Some(&a.common),
        _ => None,
    };
    let mut threads = match &cli.command {
        Some(Command::Eval(a)) => a.threads,
        Some(Command::Embed(a)) => a.threads,
        Some(Command::Speech(speech::SpeechCommand::Eval(a))) => a.threads,
        Some(Command::Federated(a)) => a.threads,
        _ => common.map_or(0, |c| c.threads),
    };
    let distributed = match &cli.command {
        Some(Command::Federated(a)) => a.distributed,
        _ => common.is_some_and(|c| c.distributed),
    };
    // a rank joins the job before anything runs: rank 0 alone prints, and the ranks on one
    // machine share its cores
    let joined = if distributed {
        distributed::join().map(|place| {
            if place.rank > 0 {
                distributed::quiet_stdout();
            }
            if threads == 0 {
                threads = distributed::threads_per_rank();
            }
            Some(place)
        })
    } else {
        Ok(None)
    };
    let place = joined.as_ref().ok().copied().flatten();
    let result: Result<(), TrainError> = joined.map(|_| ());
    let result = result.and_then(|()| {
        if threads == 0 {
            return Ok(());
        }
        ferrograd_tensor::set_num_threads(threads).map_err(|e| match e {
            ferrograd_tensor::Error::Value { msg, .. } => {
                TrainError::config(format!("--threads {threads}: {msg}"))
            }
            e => TrainError::from(e),
        })
    });
    // The command itself runs on one of the kernels' threads, so each parallel kernel it calls
    // starts on the calling thread instead of waking the pool and sleeping until it is done (see
    // `run_on_pool`; MNIST MLP training epochs 10-15% shorter).
    let result = result.and_then(|()| {
        ferrograd_tensor::run_on_pool(move || match cli.command {
            None => train::run(&train_args::TrainArgs::default_args()),
            Some(Command::Train(a)) => train::run(&a),
            Some(Command::Eval(a)) => evaluate::run(&a),
            Some(Command::Predict(a)) => predict::run(&a),
            Some(Command::Gpt(c)) => gpt::run(&c),
            Some(Command::Embed(a)) => embed::run_embed(&a),
            Some(Command::Similarity(a)) => embed::run_similarity(&a),
            Some(Command::Finetune(a)) => finetune::run(&a),
            Some(Command::Classify(a)) => classify::run_classify(&a),
            Some(Command::Speech(c)) => speech::run(&c),
            Some(Command::Recommend(c)) => recommend::run(&c),
            Some(Command::Federated(a)) => federated::run(&a),
        })
    });
    match (result, place) {
        (Ok(()), _) => {
            distributed::finish();
            ExitCode::SUCCESS
        }
        (Err(e), Some(p)) if p.world > 1 => {
            // the other ranks may be waiting for this one in a collective: end them all
            eprintln!("error on rank {} of {}: {e}", p.rank, p.world);
            // mpirun forwards a rank's output through a pipe it reads: give it a moment to
            // read this line before the abort tears the job down
            std::thread::sleep(std::time::Duration::from_millis(300));
            distributed::abort(1)
        }
        (Err(e), _) => {
            eprintln!("error: {e}");
            // a world of one waits for nobody: finalise MPI as after a success
            distributed::finish();
            ExitCode::FAILURE
        }
    }
}
