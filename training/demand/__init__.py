"""The demand model: weekly package and service-load forecasts per region, and their uses."""
