"""Studies beyond the SNIP paper: sparse recurrent networks on the Reber grammar (the thesis
"Investigating Sparsity in Recurrent Neural Networks", arXiv 2407.20601)."""
