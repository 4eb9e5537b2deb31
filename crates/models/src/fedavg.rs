//! The two MNIST models of McMahan et al. 2017 ("Communication-Efficient Learning of Deep
//! Networks from Decentralized Data", federated averaging):
//!
//! - the CNN: 5x5 conv 1->32 (padding 2) -> ReLU -> 2x2 max pool -> 5x5 conv 32->64 (padding 2)
//!   -> ReLU -> 2x2 max pool -> flatten (64*7*7 = 3136) -> fc 512 -> ReLU -> outputs;
//!   1,663,370 parameters with 10 outputs, as the paper counts;
//! - the 2NN: 784 -> 200 -> ReLU -> 200 -> ReLU -> outputs; 199,210 parameters.

use ferrograd_nn::{Conv2d, Forward, Linear, Module, Result};
use ferrograd_tensor::{Conv2dOptions, Pool2dOptions, Rng, Tensor};

#[derive(Module)]
pub struct FedCnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub fc1: Linear,
    pub fc2: Linear,
    training: bool,
}

impl FedCnn {
    pub fn new(outputs: usize, rng: &mut Rng) -> Result<Self> {
        let same = Conv2dOptions {
            padding: (2, 2),
            ..Default::default()
        };
        Ok(FedCnn {
            conv1: Conv2d::new(1, 32, 5, same, rng)?,
            conv2: Conv2d::new(32, 64, 5, same, rng)?,
            fc1: Linear::new(64 * 7 * 7, 512, rng)?,
            fc2: Linear::new(512, outputs, rng)?,
            training: true,
        })
    }
}

impl Forward for FedCnn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() == 2 {
            x.reshape([x.dims()[0], 1, 28, 28])?
        } else {
            x.clone()
        };
        // relu(max_pool(c)) = max_pool(relu(c)) (ReLU is monotone; see lenet5.rs), on a quarter
        // of the elements
        let pool = Pool2dOptions::new(2);
        let h = self.conv1.forward(&x)?.max_pool2d(pool)?.relu()?;
        let h = self.conv2.forward(&h)?.max_pool2d(pool)?.relu()?;
        let h = self.fc1.forward_relu(&h.flatten(1, -1)?)?;
        self.fc2.forward(&h)
    }
}

#[derive(Module)]
pub struct TwoNn {
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    training: bool,
}

impl TwoNn {
    pub fn new(outputs: usize, rng: &mut Rng) -> Result<Self> {
        Ok(TwoNn {
            fc1: Linear::new(784, 200, rng)?,
            fc2: Linear::new(200, 200, rng)?,
            fc3: Linear::new(200, outputs, rng)?,
            training: true,
        })
    }
}

impl Forward for TwoNn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() > 2 {
            x.flatten(1, -1)?
        } else {
            x.clone()
        };
        let h = self.fc1.forward_relu(&x)?;
        let h = self.fc2.forward_relu(&h)?;
        self.fc3.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_papers_parameter_counts_and_output_shapes() -> Result<()> {
        let mut rng = Rng::new(0);
        let cnn = FedCnn::new(10, &mut rng)?;
        let two = TwoNn::new(10, &mut rng)?;
        assert_eq!(ferrograd_nn::num_parameters(&cnn), 1_663_370);
        assert_eq!(ferrograd_nn::num_parameters(&two), 199_210);
        let x = Tensor::zeros([3, 1, 28, 28], ferrograd_tensor::DType::F32)?;
        assert_eq!(cnn.forward(&x)?.dims(), &[3, 10]);
        assert_eq!(two.forward(&x)?.dims(), &[3, 10]);
        Ok(())
    }
}
