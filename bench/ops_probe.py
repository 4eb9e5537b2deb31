# PyTorch side of crates/tensor/examples/ops_probe.rs: the same ops and shapes, 2 threads.
# `python ops_probe.py lenet` for LeNet-5's ops at batch 64; `mlp` for the MNIST MLP's layers at
# inference, batch 1000.
import sys, torch, time, torch.nn.functional as F
torch.set_num_threads(2)
def med(v): v=sorted(v); return v[len(v)//2]
def tm(name, f):
    a=[];b=[]
    for _ in range(15):
        x,y=f(); a.append(x); b.append(y)
    print(f"min {min(a)*1e3:7.3f} {min(b)*1e3:7.3f} | {name:28} fwd {med(a)*1e3:7.3f} ms  bwd {med(b)*1e3:7.3f} ms")
def fwd_bwd(name, leaves, g, f):
    def run():
        t=time.perf_counter(); y=f(); ft=time.perf_counter()-t
        l=(y*g).sum(); t=time.perf_counter(); l.backward(); bt=time.perf_counter()-t
        for p in leaves: p.grad=None
        return ft,bt
    tm(name, run)
if sys.argv[1:] == ["mlp"]:
    x=torch.randn(1000,784); w1=torch.randn(500,784); b1=torch.randn(500); w2=torch.randn(10,500); b2=torch.randn(10)
    h=F.relu(F.linear(x,w1,b1))
    def fwd(name, f):
        def run():
            with torch.no_grad():
                t=time.perf_counter(); f(); return time.perf_counter()-t, 0.0
        tm(name, run)
    fwd("fc1+relu 784->500", lambda: F.relu(F.linear(x,w1,b1)))
    fwd("fc2 500->10", lambda: F.linear(h,w2,b2))
    sys.exit(0)
if sys.argv[1:] == ["lenet"]:
    x=torch.randn(64,1,28,28); w=torch.randn(6,1,5,5,requires_grad=True); b=torch.randn(6,requires_grad=True)
    fwd_bwd("conv1 1->6 28x28 pad2", [w,b], torch.randn(64,6,28,28), lambda: F.conv2d(x,w,b,padding=2))
    x2=torch.randn(64,6,14,14,requires_grad=True); w2=torch.randn(16,6,5,5,requires_grad=True); b2=torch.randn(16,requires_grad=True)
    fwd_bwd("conv2 6->16 14x14", [x2,w2,b2], torch.randn(64,16,10,10), lambda: F.conv2d(x2,w2,b2))
    for shape,name in [((64,6,28,28),"max_pool2d 64x6x28x28"),((64,16,10,10),"max_pool2d 64x16x10x10")]:
        xp=torch.randn(*shape,requires_grad=True)
        fwd_bwd(name, [xp], torch.randn(shape[0],shape[1],shape[2]//2,shape[3]//2), lambda: F.max_pool2d(xp,2))
    xr=torch.randn(64,6,14,14,requires_grad=True)
    fwd_bwd("relu 64x6x14x14", [xr], torch.randn(64,6,14,14), lambda: F.relu(xr))
    sys.exit(0)
for i,o in [(128,384),(128,128),(128,512),(512,128),(128,65)]:
    x=torch.randn(4096,i,requires_grad=True); w=torch.randn(o,i,requires_grad=True); b=torch.randn(o,requires_grad=True); g=torch.randn(4096,o)
    def f():
        t=time.perf_counter(); y=F.linear(x,w,b); ft=time.perf_counter()-t
        l=(y*g).sum(); t=time.perf_counter(); l.backward(); bt=time.perf_counter()-t
        x.grad=None; w.grad=None; b.grad=None
        return ft,bt
    tm(f"linear {i}->{o}", f)
x=torch.randn(4096,128,requires_grad=True); w=torch.randn(128,requires_grad=True); bb=torch.randn(128,requires_grad=True); g=torch.randn(4096,128)
def f():
    t=time.perf_counter(); y=F.layer_norm(x,(128,),w,bb); ft=time.perf_counter()-t
    l=(y*g).sum(); t=time.perf_counter(); l.backward(); bt=time.perf_counter()-t
    x.grad=None; w.grad=None; bb.grad=None
    return ft,bt
tm("layer_norm 4096x128", f)
x=torch.randn(4096,512,requires_grad=True); g=torch.randn(4096,512)
def f():
    t=time.perf_counter(); y=F.gelu(x); ft=time.perf_counter()-t
    l=(y*g).sum(); t=time.perf_counter(); l.backward(); bt=time.perf_counter()-t
    x.grad=None
    return ft,bt
tm("gelu 4096x512", f)
x=torch.randn(4096,128,requires_grad=True); y2=torch.randn(4096,128,requires_grad=True)
def f():
    t=time.perf_counter(); y=x+y2; ft=time.perf_counter()-t
    l=y.sum(); t=time.perf_counter(); l.backward(); bt=time.perf_counter()-t
    x.grad=None; y2.grad=None
    return ft,bt
tm("add 4096x128", f)
qkv=torch.randn(32,128,384,requires_grad=True); g=torch.randn(32,128,128)
def f():
    t=time.perf_counter()
    q,k,v=qkv.split(128,dim=2)
    q=q.view(32,128,4,32).transpose(1,2); k=k.view(32,128,4,32).transpose(1,2); v=v.view(32,128,4,32).transpose(1,2)
    y=F.scaled_dot_product_attention(q,k,v,is_causal=True).transpose(1,2).contiguous().view(32,128,128)
    ft=time.perf_counter()-t
    l=(y*g).sum(); t=time.perf_counter(); l.backward(); bt=time.perf_counter()-t
    qkv.grad=None
    return ft,bt
tm("attention 32x128x384 h4", f)
