"""Fine-tuning jobs: the state machine (`status`), model names (`naming`), hyperparameter
validation and resolution (`hyperparameters`), and the domain functions (`service`) that the
API and the scheduler call."""
