"""The classic PyTorch MNIST example (pytorch/examples, mnist/main.py: two convolutions, dropout, Adadelta at
lr 1.0 with StepLR(gamma=0.7)) on tinygrad_cnn, with its imports changed and three edits, each marked EDIT:

    1. the device: torch.device("cuda" if use_cuda else "cpu") (it gives the name, "cuda:0" or "cpu"), where
       torch's example also probes Apple's MPS (torch.backends.mps: there is no MPS here);
    2. the data: the bundled MNIST through tinygrad_cnn.data.DataLoader, where torch uses torchvision's
       datasets, transforms and torch.utils.data.DataLoader (the same normalisation, 0.1307 and 0.3081);
    3. saving: torch.save(model.state_dict(), "mnist_cnn.safetensors"), where torch pickles to "mnist_cnn.pt"
       (nothing here pickles: .safetensors, which torch.load here and safetensors.torch.load_file read back).

Everything else is PyTorch's code as written: nn.Conv2d(1, 32, 3, 1), nn.Linear(9216, 128), F.relu,
F.max_pool2d, torch.flatten(x, 1), F.log_softmax(x, dim=1), F.nll_loss, optim.Adadelta, StepLR, model.train(),
model.eval(), torch.no_grad(), output.argmax(dim=1, keepdim=True), pred.eq(target.view_as(pred)), loss.item().

    python examples/pytorch_mnist.py --epochs 1
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a clone

import tinygrad_cnn as torch  # noqa: E402  (was: import torch)
import tinygrad_cnn.torch_nn as nn  # noqa: E402  (was: import torch.nn as nn)
from tinygrad_cnn import optim  # noqa: E402  (was: import torch.optim as optim)
from tinygrad_cnn.data import DataLoader  # noqa: E402  (was: from torchvision import datasets, transforms)
from tinygrad_cnn.datasets import mnist  # noqa: E402
from tinygrad_cnn.nn import functional as F  # noqa: E402  (was: import torch.nn.functional as F)
from tinygrad_cnn.optim.lr_scheduler import StepLR  # noqa: E402  (was: from torch.optim.lr_scheduler import StepLR)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            if args.dry_run:
                break


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))


def main():
    # Training settings
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64, metavar='N',
                        help='input batch size for training (default: 64)')
    parser.add_argument('--test-batch-size', type=int, default=1000, metavar='N',
                        help='input batch size for testing (default: 1000)')
    parser.add_argument('--epochs', type=int, default=14, metavar='N',
                        help='number of epochs to train (default: 14)')
    parser.add_argument('--lr', type=float, default=1.0, metavar='LR',
                        help='learning rate (default: 1.0)')
    parser.add_argument('--gamma', type=float, default=0.7, metavar='M',
                        help='Learning rate step gamma (default: 0.7)')
    parser.add_argument('--no-cuda', action='store_true', default=False,
                        help='disables CUDA training')
    parser.add_argument('--dry-run', action='store_true', default=False,
                        help='quickly check a single pass')
    parser.add_argument('--seed', type=int, default=1, metavar='S',
                        help='random seed (default: 1)')
    parser.add_argument('--log-interval', type=int, default=10, metavar='N',
                        help='how many batches to wait before logging training status')
    parser.add_argument('--save-model', action='store_true', default=False,
                        help='For Saving the current Model')
    args = parser.parse_args()
    use_cuda = not args.no_cuda and torch.cuda.is_available()

    torch.manual_seed(args.seed)

    device = torch.device("cuda" if use_cuda else "cpu")  # EDIT 1 (torch: also "mps" via torch.backends.mps)

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    # EDIT 2: the data (torch: torchvision's transforms.Normalize((0.1307,), (0.3081,)), datasets.MNIST and
    # torch.utils.data.DataLoader(dataset, **kwargs); its CUDA kwargs add workers and pinned memory)
    if use_cuda:
        train_kwargs.update({'shuffle': True})
        test_kwargs.update({'shuffle': True})

    def transform(images):
        return ((images[:, None] / 255.0 - 0.1307) / 0.3081).astype("float32")
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    train_loader = DataLoader(x_train, y_train, transform=transform, **train_kwargs)
    test_loader = DataLoader(x_test, y_test, transform=transform, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.safetensors")  # EDIT 3 (torch: "mnist_cnn.pt", a pickle)


if __name__ == '__main__':
    main()
