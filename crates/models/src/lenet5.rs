//! LeNet-5 for 28x28 inputs: conv 1->6 5x5 (padding 2) -> act -> pool 2 -> conv 6->16 5x5 -> act
//! -> pool 2 -> flatten (16*5*5 = 400) -> 120 -> act -> 84 -> act -> outputs. The modern form uses
//! ReLU and max pooling; the 1998 form tanh and average pooling.

use ferrograd_nn::{Conv2d, Forward, Linear, Module, Result};
use ferrograd_tensor::{Conv2dOptions, Pool2dOptions, Rng, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeNetStyle {
    Modern,
    Classic,
}

#[derive(Module)]
pub struct LeNet5 {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    #[module(skip)]
    pub style: LeNetStyle,
    training: bool,
}

impl LeNet5 {
    pub fn new(style: LeNetStyle, outputs: usize, rng: &mut Rng) -> Result<Self> {
        let pad2 = Conv2dOptions {
            padding: (2, 2),
            ..Default::default()
        };
        Ok(LeNet5 {
            conv1: Conv2d::new(1, 6, 5, pad2, rng)?,
            conv2: Conv2d::new(6, 16, 5, Conv2dOptions::default(), rng)?,
            fc1: Linear::new(400, 120, rng)?,
            fc2: Linear::new(120, 84, rng)?,
            fc3: Linear::new(84, outputs, rng)?,
            style,
            training: true,
        })
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.style {
            LeNetStyle::Modern => x.relu()?,
            LeNetStyle::Classic => x.tanh()?,
        })
    }

    /// `act(layer(x))`, the ReLU fused into the product where it can be (see
    /// `Linear::forward_relu`).
    fn linear_act(&self, layer: &Linear, x: &Tensor) -> Result<Tensor> {
        match self.style {
            LeNetStyle::Modern => layer.forward_relu(x),
            LeNetStyle::Classic => Ok(layer.forward(x)?.tanh()?),
        }
    }

    /// `pool(act(x))`. For the modern style computed as `relu(max_pool(x))`: ReLU is monotone,
    /// so the two are equal, values and gradients (where a window's maximum is not positive
    /// both give 0 and no gradient), and the ReLU then runs on a quarter of the elements.
    fn act_pool(&self, x: &Tensor) -> Result<Tensor> {
        match self.style {
            LeNetStyle::Modern => self.act(&self.pool(x)?),
            LeNetStyle::Classic => self.pool(&self.act(x)?),
        }
    }

    fn pool(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self.style {
            LeNetStyle::Modern => x.max_pool2d(Pool2dOptions::new(2))?,
            LeNetStyle::Classic => x.avg_pool2d(Pool2dOptions::new(2))?,
        })
    }
}

impl Forward for LeNet5 {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = if x.rank() == 2 {
            x.reshape([x.dims()[0], 1, 28, 28])?
        } else {
            x.clone()
        };
        let h = self.act_pool(&self.conv1.forward(&x)?)?;
        let h = self.act_pool(&self.conv2.forward(&h)?)?;
        let h = h.flatten(1, -1)?;
        let h = self.linear_act(&self.fc1, &h)?;
        let h = self.linear_act(&self.fc2, &h)?;
        self.fc3.forward(&h)
    }
}

#[cfg(test)]
mod tests {
    use ferrograd_tensor::{DType, Pool2dOptions, Rng, Tensor};

    /// relu(max_pool(x)) equals max_pool(relu(x)): values and gradients, including windows
    /// whose maximum is negative or zero.
    #[test]
    fn relu_commutes_with_max_pooling() -> ferrograd_tensor::Result<()> {
        let mut rng = Rng::new(3);
        let mut v = Tensor::randn([2, 3, 6, 6], DType::F64, &mut rng)?.to_vec::<f64>()?;
        v[0..4].fill(-1.0); // a window of equal negatives
        v[6] = 0.0; // a zero maximum
        v[7] = 0.0;
        v[8] = -2.0;
        v[9] = -3.0;
        let weight = Tensor::randn([2, 3, 3, 3], DType::F64, &mut rng)?;
        let run = |pool_first: bool| -> ferrograd_tensor::Result<(Vec<f64>, Vec<f64>)> {
            let x = Tensor::from_vec(v.clone(), [2, 3, 6, 6])?.requires_grad_(true)?;
            let opt = Pool2dOptions::new(2);
            let y = if pool_first {
                x.max_pool2d(opt)?.relu()?
            } else {
                x.relu()?.max_pool2d(opt)?
            };
            y.mul(&weight)?.sum_all()?.backward()?;
            let g = x
                .grad()
                .map(|g| g.to_vec::<f64>())
                .transpose()?
                .unwrap_or_default();
            Ok((y.to_vec::<f64>()?, g))
        };
        let (a, b) = (run(true)?, run(false)?);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        Ok(())
    }
}
